"""Lines overview (live), the inspection feed per line, and the specialist switches (admins)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.deps import Admin, DbSession, Operator, get_workspace, render
from dashboard.line_settings import set_specialist_enabled
from dashboard.queries import FeedFilters, feed_page, line_statuses, specialist_switches
from pipeline.audit import write_audit
from pipeline.config import load_all_lines
from pipeline.types import Decision

router = APIRouter(tags=["lines"])


@router.get("/")
def overview(request: Request, user: Operator, session: DbSession) -> Response:
    lines = line_statuses(session, load_all_lines(get_workspace(request).config_dir))
    return render(request, "lines.html", {"user": user, "lines": lines})


@router.get("/lines/table")
def overview_table(request: Request, user: Operator, session: DbSession) -> Response:
    """The overview's table alone: htmx polls it to keep the page live."""
    lines = line_statuses(session, load_all_lines(get_workspace(request).config_dir))
    return render(request, "_lines_table.html", {"user": user, "lines": lines})


@router.get("/lines/{line_id}")
def feed(
    request: Request,
    user: Operator,
    session: DbSession,
    line_id: str,
    decision: Annotated[str | None, Query()] = None,
    camera: Annotated[str | None, Query()] = None,
    min_score: Annotated[str | None, Query()] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    line = get_workspace(request).line(line_id)  # ConfigError (404) for an unknown line
    # Empty strings come from the filter form's "any" choices and mean "no filter".
    filters = FeedFilters(
        decision=Decision(decision) if decision else None,
        camera_id=camera or None,
        min_score=float(min_score) if min_score else None,
        before=before,
    )
    page_size: int = request.app.state.settings.feed_page_size
    items = feed_page(session, line_id, filters, page_size)
    older_url = None
    if len(items) == page_size:
        query = {"decision": decision, "camera": camera, "min_score": min_score, "before": items[-1].id}
        older_url = f"/lines/{line_id}?" + urlencode({k: v for k, v in query.items() if v})
    context = {
        "user": user,
        "line": line,
        "items": items,
        "filters": filters,
        "older_url": older_url,
        "decisions": list(Decision),
        "cameras": [c.camera_id for c in line.cameras],
    }
    template = "_feed_rows.html" if request.headers.get("HX-Request") and before else "feed.html"
    return render(request, template, context)


@router.post("/lines/{line_id}/specialists")
def toggle_specialist(
    request: Request,
    user: Admin,
    session: DbSession,
    line_id: str,
    specialist: Annotated[str, Form()],
    enabled: Annotated[bool, Form()],
) -> Response:
    workspace = get_workspace(request)
    before = specialist_switches(workspace.line(line_id)).get(specialist)
    # The audit row is flushed first: if the file cannot be written, the transaction rolls back with it.
    target = f"line:{line_id}/{specialist}"
    write_audit(session, user, "line.specialist", target, {"enabled": before}, {"enabled": enabled})
    set_specialist_enabled(workspace.config_dir, line_id, specialist, enabled)
    session.commit()
    return RedirectResponse("/specialists", status_code=303)


@router.get("/specialists")
def specialists_page(request: Request, user: Admin) -> Response:
    lines = load_all_lines(get_workspace(request).config_dir)
    switches = {line.line_id: specialist_switches(line) for line in lines}
    return render(request, "specialists.html", {"user": user, "lines": lines, "switches": switches})
