"""The model registry: which ONNX model versions exist and which one is live.

Kept apart from the frame/inspection repository because it changes for other
reasons (training, promotion) and is used by other callers (``qcflow fit``,
the dashboard's admin pages). ``pipeline.db.repository`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.db.models import ModelRow
from pipeline.errors import ModelNotFound, StorageError


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A registered model version, as stored (mirrors the exported model.json)."""

    name: str
    version: str
    kind: str
    path: str
    onnx_sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    training_digest: str = ""
    active: bool = False
    created_at: datetime | None = None


def _model_record(row: ModelRow) -> ModelRecord:
    return ModelRecord(
        name=row.name,
        version=row.version,
        kind=row.kind,
        path=row.path,
        onnx_sha256=row.onnx_sha256,
        metrics=dict(row.metrics),
        thresholds=dict(row.thresholds),
        preprocessing=dict(row.preprocessing),
        training_digest=row.training_digest,
        active=row.active,
        created_at=row.created_at,
    )


def _activate(session: Session, row: ModelRow) -> None:
    """Make ``row`` the one active version of its name (others off first: unique index)."""
    session.execute(
        update(ModelRow)
        .where(ModelRow.name == row.name, ModelRow.id != row.id, ModelRow.active)
        .values(active=False)
    )
    row.active = True
    session.flush()


def register_model(session: Session, record: ModelRecord, *, activate: bool | None = None) -> ModelRecord:
    """Register a model version; with ``activate`` (default: ``record.active``) it
    becomes the only active version of its name.

    Registering the same name, version and ONNX digest again is a no-op (apart
    from activation); the same name and version with a different digest is
    refused, because a version must always mean the same weights.
    """
    activate = record.active if activate is None else activate
    row = session.scalar(
        select(ModelRow).where(ModelRow.name == record.name, ModelRow.version == record.version)
    )
    if row is not None and row.onnx_sha256 != record.onnx_sha256:
        raise StorageError(
            f"model {record.name!r} version {record.version!r} is already registered with "
            f"ONNX digest {row.onnx_sha256[:12]}…, not {record.onnx_sha256[:12]}…; "
            "register the new file under a new version"
        )
    if row is None:
        row = ModelRow(
            name=record.name,
            version=record.version,
            kind=record.kind,
            path=record.path,
            onnx_sha256=record.onnx_sha256,
            metrics=dict(record.metrics),
            thresholds=dict(record.thresholds),
            preprocessing=dict(record.preprocessing),
            training_digest=record.training_digest,
            active=False,
        )
        session.add(row)
        session.flush()
    if activate:
        _activate(session, row)
    return _model_record(row)


def _registered_names(session: Session) -> list[str]:
    return list(session.scalars(select(ModelRow.name).distinct().order_by(ModelRow.name)))


def activate_model(session: Session, name: str, version: str) -> ModelRecord:
    """Make an already registered version the active one of its name."""
    row = session.scalar(select(ModelRow).where(ModelRow.name == name, ModelRow.version == version))
    if row is None:
        versions = session.scalars(select(ModelRow.version).where(ModelRow.name == name))
        raise ModelNotFound(
            f"model {name!r} has no version {version!r} "
            f"(registered versions: {', '.join(versions) or 'none'})"
        )
    _activate(session, row)
    return _model_record(row)


def get_active_model(session: Session, name: str) -> ModelRecord:
    """The active version of a model, or ``ModelNotFound`` saying what is registered."""
    row = session.scalar(select(ModelRow).where(ModelRow.name == name, ModelRow.active))
    if row is not None:
        return _model_record(row)
    versions = list(session.scalars(select(ModelRow.version).where(ModelRow.name == name)))
    names = ", ".join(_registered_names(session)) or "none"
    if versions:
        raise ModelNotFound(
            f"model {name!r} has no active version (registered versions: "
            f"{', '.join(versions)}); activate one. Registered models: {names}"
        )
    raise ModelNotFound(f"no model named {name!r} is registered. Registered models: {names}")


def list_models(session: Session) -> list[ModelRecord]:
    """Every registered model version, by name then registration time."""
    rows = session.scalars(select(ModelRow).order_by(ModelRow.name, ModelRow.created_at))
    return [_model_record(r) for r in rows]
