"""Request dependencies: the workspace, a database session, the current user, role checks, CSRF."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from dashboard.security import SESSION_USER, csrf_matches, csrf_token
from pipeline.inspection import Workspace
from pipeline.users import Role, UserRecord, get_user, require_role

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class NotAuthenticated(Exception):
    """No logged-in user: HTML routes answer with a redirect to the login page."""


def get_workspace(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


def db_session(workspace: Annotated[Workspace, Depends(get_workspace)]) -> Iterator[Session]:
    """One session per request; routes that write commit it themselves, anything else is rolled back."""
    with workspace.session() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def current_user(request: Request, session: DbSession) -> UserRecord:
    """The logged-in user, read from the database each time so a removed role takes effect at once."""
    name = request.session.get(SESSION_USER)
    user = get_user(session, name) if isinstance(name, str) else None
    if user is None:
        request.session.pop(SESSION_USER, None)
        raise NotAuthenticated
    return user


def require(role: Role) -> Callable[..., UserRecord]:
    """A dependency admitting users with ``role`` or above (checked on the server for every route)."""

    def dependency(request: Request, user: Annotated[UserRecord, Depends(current_user)]) -> UserRecord:
        require_role(user, role, f"open {request.url.path}")
        return user

    return dependency


Operator = Annotated[UserRecord, Depends(require(Role.OPERATOR))]
Reviewer = Annotated[UserRecord, Depends(require(Role.REVIEWER))]
Admin = Annotated[UserRecord, Depends(require(Role.ADMIN))]


async def verify_csrf(request: Request) -> None:
    """Every state-changing request must carry the session's token (form field or htmx header)."""
    if request.method not in UNSAFE_METHODS:
        return
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        form = await request.form()  # parsed once and cached: the route's Form() fields still work
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    if not csrf_matches(request.session, submitted):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong: reload the page and retry")


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """A page with what every template needs: the user (if any), the CSRF token and the roles."""
    name = request.session.get(SESSION_USER)
    base = {"csrf_token": csrf_token(request.session), "session_user": name, "Role": Role}
    return TEMPLATES.TemplateResponse(request, template, {**base, **(context or {})}, status_code=status_code)
