"""Log in and out. Failed logins are throttled per user name and client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.deps import DbSession, render
from dashboard.security import LoginThrottle, start_session
from pipeline.users import authenticate

router = APIRouter(tags=["auth"])


def _safe_next(target: str | None) -> str:
    """Only local paths: an open redirect to another site would help phishing."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(username, client)
    if wait > 0:
        context = {"next": _safe_next(next), "error": f"Too many failed logins; try again in {wait:.0f} s."}
        response = render(request, "login.html", context, status_code=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = authenticate(session, username, password)
    if user is None:
        throttle.record_failure(username, client)
        context = {"next": _safe_next(next), "error": "Wrong user name or password."}
        return render(request, "login.html", context, status_code=401)
    throttle.reset(username, client)
    start_session(request.session, user.name)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
