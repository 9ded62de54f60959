"""The main job on the embedded default: the simulated line, SQLite, no server."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from sklearn.metrics import roc_auc_score

from pipeline.config import LineConfig, load_app_config
from pipeline.db import repository as repo
from pipeline.db.model_registry import ModelRecord
from pipeline.errors import ConfigError, ModelNotFound
from pipeline.fitting import fit_from_simulation
from pipeline.inspection import Workspace
from pipeline.sources import SimulatedSource, open_source


def ensure_demo_model(ws: Workspace, line: LineConfig, console: Console) -> ModelRecord:
    """The line's anomaly model; fitted on simulated good parts with the line's training policy
    when not registered yet."""
    name = line.specialists.anomaly.model
    with ws.session() as session:
        try:
            return repo.get_active_model(session, name)
        except ModelNotFound:
            pass
    camera = line.cameras[0]
    source = open_source(camera.source, line.line_id, camera.camera_id)
    if not isinstance(source, SimulatedSource):
        raise ConfigError(
            f"line {line.line_id}: the demo fits its model on a sim:// camera, got {camera.source}"
        )
    with console.status(f"no model {name!r} yet: fitting it on simulated good parts (about a minute)"):
        return fit_from_simulation(ws, source.line.settings, name, **line.specialists.anomaly.fit_options())


def summarise(ws: Workspace, line: LineConfig, outcome: dict[str, Any], console: Console) -> None:
    with ws.session() as session:
        counts = repo.decision_counts(session, line.line_id)
        errors = repo.count_frame_errors(session, line.line_id)
    decisions = outcome["decisions"]
    console.rule("[bold]qcflow demo")
    console.print(
        f"this run: {outcome['frames']} frames inspected in {outcome['seconds']:.1f}s "
        f"({outcome['frames'] / max(outcome['seconds'], 1e-9):.1f} frames/s) — "
        + "  ".join(f"{d} {decisions.get(d, 0)}" for d in ("PASS", "FAIL", "REVIEW"))
    )
    if "wall_seconds" in outcome:
        console.print(
            f"the whole run took {outcome['wall_seconds']:.1f}s: Prefect's start-up and the flow's "
            "set-up come before the first frame"
        )
    truth = outcome["scored_truth"]
    if truth:
        scores = np.array([s for s, _ in truth])
        defective = np.array([bool(t) for _, t in truth])
        if 0 < defective.sum() < len(defective):
            console.print(
                f"against the simulator's ground truth: image AUROC {roc_auc_score(defective, scores):.3f} "
                f"({int(defective.sum())} defective of {len(defective)})"
            )
    console.print(
        f"database totals for line {line.line_id}: "
        + "  ".join(f"{d.value} {n}" for d, n in counts.items())
        + f"  unreadable frames {errors}"
    )
    console.print(f"database: {ws.database_url}")
    console.print(f"images and heat maps: {ws.store.root}/objects/<sha[:2]>/<sha>")
    where = f"--data-dir {ws.data_dir}"
    dashboard = load_app_config(ws.config_dir).dashboard
    console.print(f"look at them: qcflow status --line {line.line_id} {where}   (or sqlite3 on the database)")
    console.print(
        f"in a browser: qcflow users add me --role admin {where} && qcflow dashboard {where}, "
        f"then http://{dashboard.host}:{dashboard.port}"
    )
