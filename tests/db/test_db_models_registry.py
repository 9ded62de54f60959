"""The model registry: register, activate, look up, and a helpful ModelNotFound."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.db.models import ModelRow
from pipeline.db.repository import (
    ModelRecord,
    activate_model,
    get_active_model,
    list_models,
    register_model,
)
from pipeline.errors import ModelNotFound, StorageError


def _record(version: str, *, name: str = "anomaly", active: bool = False) -> ModelRecord:
    return ModelRecord(
        name=name,
        version=version,
        kind="anomaly",
        path=f"models/{name}-{version}.onnx",
        onnx_sha256=(version * 64)[:64],
        metrics={"image_auroc": 0.98},
        thresholds={"review": 0.4, "fail": 0.7},
        preprocessing={"size": [256, 256], "mean": [0.485, 0.456, 0.406]},
        training_digest="d" * 64,
        active=active,
    )


def test_register_and_activate_versions(db_session: Session) -> None:
    first = register_model(db_session, _record("1", active=True))
    assert first.active and first.created_at is not None
    register_model(db_session, _record("2"))
    db_session.commit()
    assert get_active_model(db_session, "anomaly").version == "1"

    register_model(db_session, _record("3"), activate=True)
    db_session.commit()
    assert get_active_model(db_session, "anomaly").version == "3"
    assert [(m.version, m.active) for m in list_models(db_session)] == [
        ("1", False),
        ("2", False),
        ("3", True),
    ]

    activate_model(db_session, "anomaly", "2")
    db_session.commit()
    active = get_active_model(db_session, "anomaly")
    assert (active.version, active.thresholds) == ("2", {"review": 0.4, "fail": 0.7})


def test_reregistering_is_a_noop_but_a_changed_file_is_refused(db_session: Session) -> None:
    register_model(db_session, _record("1"))
    again = register_model(db_session, _record("1"))
    assert len(list_models(db_session)) == 1 and not again.active
    changed = dataclasses.replace(_record("1"), onnx_sha256="f" * 64)
    with pytest.raises(StorageError, match="already registered"):
        register_model(db_session, changed)


def test_model_not_found_names_the_model_and_lists_registered_ones(db_session: Session) -> None:
    with pytest.raises(ModelNotFound, match=r"'anomaly'.*Registered models: none"):
        get_active_model(db_session, "anomaly")
    register_model(db_session, _record("1", name="classifier", active=True))
    register_model(db_session, _record("1", name="anomaly"))
    with pytest.raises(ModelNotFound) as excinfo:
        get_active_model(db_session, "ocr")
    assert "'ocr'" in str(excinfo.value) and "anomaly, classifier" in str(excinfo.value)
    with pytest.raises(ModelNotFound, match=r"'anomaly' has no active version.*1"):
        get_active_model(db_session, "anomaly")
    with pytest.raises(ModelNotFound, match="no version '9'"):
        activate_model(db_session, "anomaly", "9")


def test_database_allows_only_one_active_version_per_name(db_session: Session) -> None:
    register_model(db_session, _record("1", active=True))
    db_session.commit()
    other = _record("2")
    db_session.add(
        ModelRow(
            name=other.name,
            version=other.version,
            kind=other.kind,
            path=other.path,
            onnx_sha256=other.onnx_sha256,
            metrics={},
            thresholds={},
            preprocessing={},
            training_digest="",
            active=True,
        )
    )
    # PostgreSQL names the index; SQLite names the indexed column.
    with pytest.raises(IntegrityError, match=r"uq_models_active_name|models\.name"):
        db_session.flush()
