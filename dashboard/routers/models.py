"""Registered models: versions, metrics, which is active and which lines use it; admins activate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from dashboard.deps import Admin, DbSession, Operator, get_workspace, render
from pipeline.activation import activate_as
from pipeline.config import load_all_lines
from pipeline.db.model_registry import get_active_model, list_models
from pipeline.errors import ModelNotFound

router = APIRouter(tags=["models"])


def _active_version(session: Session, name: str) -> str | None:
    try:
        return get_active_model(session, name).version
    except ModelNotFound:
        return None


@router.get("/models")
def models_page(request: Request, user: Operator, session: DbSession) -> Response:
    lines = load_all_lines(get_workspace(request).config_dir)
    line_models = [(line, line.specialists.anomaly.model) for line in lines]
    context = {
        "user": user,
        "models": list_models(session),
        "line_models": [(line, name, _active_version(session, name)) for line, name in line_models],
    }
    return render(request, "models.html", context)


@router.post("/models/activate")
def activate(
    user: Admin,
    session: DbSession,
    name: Annotated[str, Form()],
    version: Annotated[str, Form()],
) -> Response:
    activate_as(session, user, name, version)
    session.commit()
    return RedirectResponse("/models", status_code=303)
