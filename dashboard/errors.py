"""qcflow errors to HTTP answers: the one place where QCError subclasses meet status codes."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from dashboard.deps import NotAuthenticated, render
from pipeline.errors import ConfigError, ModelNotFound, QCError, StorageError
from pipeline.overrides import UnknownInspection
from pipeline.review import AlreadyReviewed, ReviewerRoleRequired, SyntheticImageNotFound
from pipeline.users import PermissionDenied, UnknownUser, UserExists

STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (PermissionDenied, 403),
    (ReviewerRoleRequired, 403),
    (UnknownInspection, 404),
    (SyntheticImageNotFound, 404),
    (ModelNotFound, 404),
    (UnknownUser, 404),
    (StorageError, 404),  # an image digest that is not in the store
    (ConfigError, 404),  # an unknown line id
    (AlreadyReviewed, 409),
    (UserExists, 409),
    (QCError, 400),
    (ValueError, 400),  # bad input refused by pipeline functions, their message says what
)


def status_for(exc: Exception) -> int:
    return next(code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind))


def _error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", {"status": status, "message": message}, status_code=status)


async def _not_authenticated(request: Request, exc: Exception) -> Response:
    target = f"/login?next={quote(request.url.path)}"
    if request.headers.get("HX-Request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _qc_error(request: Request, exc: Exception) -> Response:
    return _error_page(request, status_for(exc), str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(QCError, _qc_error)
    app.add_exception_handler(ValueError, _qc_error)
