"""A simulated line for the speed benchmarks: a model fitted on simulated good parts, and a line
configuration with cameras of one's choosing (shared by ``anomaly_speed`` and ``workers``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from inspectors.model_card import ModelCard
from inspectors.training.fit_anomaly import export_and_calibrate, request_from_simulation
from inspectors.training.patchcore import PatchCoreScorer, PatchCoreSettings, fit_patchcore
from pipeline.simulate import SimulationSettings

LINE = "bench"


def fit_simulated_model(
    simulation: SimulationSettings, root: Path
) -> tuple[PatchCoreScorer, Path, ModelCard, float]:
    """The default model fitted on 64 simulated good parts (32 more calibrate it): scorer, model folder,
    card and fit seconds."""
    request = request_from_simulation(
        simulation, LINE, n_fit=64, n_calibration=32, settings=PatchCoreSettings()
    )
    started = time.perf_counter()
    scorer = fit_patchcore(request.good_images, request.settings)
    fit_s = time.perf_counter() - started
    model_dir, card = export_and_calibrate(scorer, request, fit_s, root / "models")
    return scorer, model_dir, card, fit_s


def write_line_config(root: Path, cameras: Mapping[str, str]) -> Path:
    """A config folder whose line ``bench`` has the given cameras (id -> source) and the anomaly
    specialist with the model registered as ``bench``."""
    config = root / "config"
    (config / "lines").mkdir(parents=True)
    (config / "qcflow.yaml").write_text("lines_dir: lines\n")
    (config / "lines" / f"{LINE}.yaml").write_text(
        f"line_id: {LINE}\nname: {LINE}\nschedule: {{interval_seconds: 60}}\nbatch_size: 1000\n"
        "cameras:\n"
        + "".join(f"  - {{camera_id: {camera}, source: '{source}'}}\n" for camera, source in cameras.items())
        + f"specialists:\n  anomaly: {{enabled: true, model: {LINE}}}\n"
    )
    return config
