"""Inspection detail with heat map and regions, decision overrides, and the REVIEW-band queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.deps import DbSession, Operator, Reviewer, get_workspace, render
from dashboard.queries import inspection_item, inspection_items
from pipeline.overrides import UnknownInspection, override_decision, reviews_of, unreviewed_review_band
from pipeline.types import Decision

router = APIRouter(tags=["inspections"])

QUICK_REASONS = ("Cosmetic only, within spec", "Defect confirmed by eye", "Artefact of lighting or dust")


@router.get("/inspections/{inspection_id}")
def detail(request: Request, user: Operator, session: DbSession, inspection_id: int) -> Response:
    item = inspection_item(session, inspection_id)
    if item is None:
        raise UnknownInspection(f"no inspection with id {inspection_id}")
    # A frame whose picture was pruned and then arrived again is pictured again, but the heat maps of
    # its earlier inspections stay gone.
    heatmap = item.heatmap_sha256
    context = {
        "user": user,
        "item": item,
        "heatmap_kept": heatmap is not None and get_workspace(request).store.size_of(heatmap) > 0,
        "reviews": reviews_of(session, inspection_id),
        "quick_reasons": QUICK_REASONS,
    }
    return render(request, "inspection.html", context)


@router.post("/inspections/{inspection_id}/override")
def override(
    user: Operator,
    session: DbSession,
    inspection_id: int,
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()],
) -> Response:
    override_decision(session, user, inspection_id, Decision(decision), reason)
    session.commit()
    return RedirectResponse(f"/inspections/{inspection_id}", status_code=303)


@router.get("/review")
def review_queue(request: Request, user: Reviewer, session: DbSession) -> Response:
    items = inspection_items(session, unreviewed_review_band(session, limit=25))
    context = {"user": user, "items": items, "quick_reasons": QUICK_REASONS}
    return render(request, "review_queue.html", context)


@router.post("/review/{inspection_id}")
def review_decide(
    user: Reviewer,
    session: DbSession,
    inspection_id: int,
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()],
) -> Response:
    override_decision(session, user, inspection_id, Decision(decision), reason)
    session.commit()
    return RedirectResponse("/review", status_code=303)
