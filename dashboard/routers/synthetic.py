"""The synthetic-image review queue (reviewers): approve or reject with a reason, via pipeline.review."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.deps import DbSession, Reviewer, render
from pipeline import review

router = APIRouter(tags=["synthetic"])


@router.get("/synthetic")
def queue(request: Request, user: Reviewer, session: DbSession) -> Response:
    return render(request, "synthetic.html", {"user": user, "images": review.review_queue(session, limit=25)})


@router.post("/synthetic/{image_id}")
def decide(
    user: Reviewer,
    session: DbSession,
    image_id: int,
    verdict: Annotated[str, Form(pattern="^(approve|reject)$")],
    reason: Annotated[str, Form()],
) -> Response:
    action = review.approve if verdict == "approve" else review.reject
    action(session, image_id, user.name, reason)
    session.commit()
    return RedirectResponse("/synthetic", status_code=303)
