"""Fit an anomaly model (torch, lazily imported) and register it in the database.

The training package is imported only here, when a fit is asked for, so
inspection never loads torch.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.db import repository as repo
from pipeline.db.model_registry import ModelRecord
from pipeline.inspection import Workspace
from pipeline.simulate import SimulationSettings


def _training(module: str = "inspectors.training.fit_anomaly") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"fitting needs the training extra: pip install 'qcflow[train]' ({exc})") from exc


def register_model_dir(ws: Workspace, model_dir: Path, *, activate: bool = True) -> ModelRecord:
    """Register an exported model folder (model.onnx + model.json) in the database."""
    card = json.loads((model_dir / "model.json").read_text())
    record = ModelRecord(
        name=card["name"],
        version=card["version"],
        kind=card["kind"],
        path=str(model_dir),
        onnx_sha256=card["onnx_sha256"],
        metrics={**card["metrics"], "parity": card["parity"], "training": card["training"]},
        thresholds=card["thresholds"],
        preprocessing=card["preprocessing"],
        training_digest=card["training"]["data_digest"],
        active=activate,
    )
    with ws.session() as session, session.begin():
        return repo.register_model(session, record)


def fit_from_dataset(
    ws: Workspace,
    data: Path,
    name: str,
    *,
    activate: bool = True,
    calibration_defects: Path | None = None,
    calibration_good: Path | None = None,
    allow_evaluation_overlap: bool = False,
    targets: Mapping[str, float] | None = None,
    **options: Any,
) -> ModelRecord:
    """Fit on ``data/train/good`` (MVTec layout), calibrate on a held-out share (or on
    ``calibration_good``, good images of other parts), register.

    ``calibration_defects`` (a folder of defective images) also sets the review threshold;
    images that are in ``data/test`` are refused unless ``allow_evaluation_overlap``.
    ``targets`` overrides calibration targets (``target_false_reject``, ``target_review_rate``,
    ``target_escape``; see ``pipeline.decide.calibrate_thresholds``).
    """
    training = _training()
    settings = training.PatchCoreSettings(**options)
    request = training.request_from_mvtec(
        data,
        name,
        settings,
        calibration_defects=calibration_defects,
        calibration_good=calibration_good,
        allow_evaluation_overlap=allow_evaluation_overlap,
        **(targets or {}),
    )
    model_dir, _ = training.fit_anomaly(request, ws.models_root)
    return register_model_dir(ws, model_dir, activate=activate)


def fit_from_simulation(
    ws: Workspace,
    simulation: SimulationSettings,
    name: str,
    *,
    n_fit: int = 64,
    n_calibration: int = 64,
    **options: Any,
) -> ModelRecord:
    """The demo model: good parts of the simulated line, from indices the line never inspects.

    ``options`` are PatchCore settings (the line's training policy: backbone, bank size, ...).
    """
    training = _training()
    request = training.request_from_simulation(
        simulation,
        name,
        n_fit=n_fit,
        n_calibration=n_calibration,
        settings=training.PatchCoreSettings(**options),
    )
    model_dir, _ = training.fit_anomaly(request, ws.models_root)
    return register_model_dir(ws, model_dir)


def fit_classifier_from_dataset(
    ws: Workspace, data: Path, name: str, *, activate: bool = True
) -> ModelRecord:
    """Fit the defect-type classifier on the defect folders of ``data`` and register it."""
    training = _training("inspectors.training.classifier")
    model_dir, _ = training.fit_classifier(data, name, ws.models_root)
    return register_model_dir(ws, model_dir, activate=activate)


def import_caption_model(ws: Workspace, folder: Path, name: str, *, activate: bool = True) -> ModelRecord:
    """Export the local captioning model in ``folder`` to ONNX, check it, and register it."""
    training = _training("inspectors.training.caption")
    model_dir, _ = training.export_caption_model(folder, name, ws.models_root)
    return register_model_dir(ws, model_dir, activate=activate)
