"""The dashboard application: ``create_app(workspace)`` wires settings, sessions, routers and errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from dashboard.deps import verify_csrf
from dashboard.errors import install_error_handlers
from dashboard.routers import audit, auth, images, inspections, lines, models, reports, synthetic, users
from dashboard.security import LoginThrottle
from dashboard.settings import DashboardEnvironment, session_secret
from pipeline.inspection import Workspace

STATIC_DIR = Path(__file__).parent / "static"
ROUTERS = (auth, lines, inspections, synthetic, models, reports, users, audit, images)

# Everything is served by us (no CDN: the plant network has no internet), so the
# browser may load nothing from anywhere else, and no inline script may run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


NextHandler = Callable[[Request], Awaitable[Response]]


async def _security_headers(request: Request, call_next: NextHandler) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(workspace: Workspace, settings: DashboardEnvironment | None = None) -> FastAPI:
    settings = settings or DashboardEnvironment()
    app = FastAPI(
        title="qcflow dashboard",
        dependencies=[Depends(verify_csrf)],
        docs_url=None,  # no public API surface: the pages are the interface
        redoc_url=None,
        openapi_url=None,
    )
    app.state.workspace = workspace
    app.state.settings = settings
    app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_seconds)
    app.middleware("http")(_security_headers)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings, workspace.data_dir),
        session_cookie="qcflow_session",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.https_only,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in ROUTERS:
        app.include_router(module.router)
    install_error_handlers(app)
    return app
