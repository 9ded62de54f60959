"""Prefect flow: fit a line's anomaly model, export, calibrate and register it, then evaluate it.

The new version is activated only when the line's config says ``auto_activate: true``;
otherwise a person activates it after reading the evaluation (``qcflow models``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, RUN_ID

from flows.inspect_line import workspace_for
from pipeline.activation import activate_as
from pipeline.db.model_registry import ModelRecord


# Persisted and keyed on the run: a retried or restarted run reuses the fitted model instead of
# fitting again, while a new run always fits afresh (the data folder may have changed).
@task(persist_result=True, cache_policy=INPUTS + RUN_ID, task_run_name="fit {model_name}")
def fit_task(
    data: str,
    model_name: str,
    fit_options: dict[str, Any],
    data_dir: str | None,
    database_url: str | None,
    calibration_good: str | None = None,
) -> ModelRecord:
    from pipeline.fitting import fit_from_dataset

    ws = workspace_for(data_dir, None, database_url)
    calibration = None if calibration_good is None else Path(calibration_good)
    return fit_from_dataset(
        ws, Path(data), model_name, activate=False, calibration_good=calibration, **fit_options
    )


@task(retries=2, retry_delay_seconds=[5, 30], persist_result=True, task_run_name="evaluate {model_dir}")
def evaluate_task(model_dir: str, data: str, out_dir: str) -> dict[str, Any]:
    from pipeline.datasets import open_mvtec
    from pipeline.evaluate import evaluate_model, write_metrics

    metrics = evaluate_model(Path(model_dir), open_mvtec(Path(data)))
    write_metrics(metrics, Path(out_dir))
    return metrics


@task(retries=2, retry_delay_seconds=[2, 10])
def activate_task(name: str, version: str, data_dir: str | None, database_url: str | None) -> None:
    ws = workspace_for(data_dir, None, database_url)
    with ws.session() as session, session.begin():
        activate_as(session, "train-model flow (auto_activate)", name, version)


@flow(name="train-model", log_prints=False)
def train_model(
    line_id: str,
    data: str,
    data_dir: str | None = None,
    config_dir: str | None = None,
    database_url: str | None = None,
    calibration_good: str | None = None,
) -> dict[str, Any]:
    """Fit the line's model with its training policy on ``data`` (MVTec AD layout), then evaluate it.

    ``calibration_good``: a folder of good images of parts not in ``data`` that set the thresholds,
    instead of a held-out share of the training images (``qcflow fit anomaly --calibration-good``)."""
    ws = workspace_for(data_dir, config_dir, database_url)
    settings = ws.line(line_id).specialists.anomaly
    record = fit_task(
        data, settings.model, settings.fit_options(), str(ws.data_dir), database_url, calibration_good
    )
    out_dir = ws.data_dir / "evaluations" / record.name / record.version
    metrics = evaluate_task(record.path, data, str(out_dir))
    if settings.auto_activate:
        activate_task(record.name, record.version, str(ws.data_dir), database_url)
    return {
        "model": record.name,
        "version": record.version,
        "activated": settings.auto_activate,
        "metrics_path": str(out_dir / "metrics.json"),
        "image_auroc": metrics["image_auroc"],
    }
