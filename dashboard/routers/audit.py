"""The audit log page (reviewers and admins): every change, newest first, paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from dashboard.deps import DbSession, Reviewer, render
from pipeline.audit import count_audit, list_audit

router = APIRouter(tags=["audit"])
PAGE = 100


@router.get("/audit")
def audit_page(
    request: Request, user: Reviewer, session: DbSession, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    entries = list_audit(session, offset=(page - 1) * PAGE, limit=PAGE)
    total = count_audit(session)
    context = {"user": user, "entries": entries, "page": page, "has_next": page * PAGE < total}
    return render(request, "audit.html", context)
