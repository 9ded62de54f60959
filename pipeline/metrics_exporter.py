"""Prometheus metrics of inspection: frames, decisions, latencies, frame and source errors.

Flow runs started by ``qcflow serve`` are child processes, so the serve process exports the sum
of all of them through prometheus-client's multiprocess mode: ``enable_multiprocess`` names a
folder in the environment, the children inherit it (prometheus-client reads it when they import
it) and write their values there, and the exporter adds those files up on each scrape.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

from pipeline.inspection import BatchSummary
from pipeline.types import Frame, InspectionResult

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_CAMERA = ["line", "camera"]

FRAMES = Counter("qcflow_frames_inspected_total", "Frames inspected and logged", _CAMERA)
DECISIONS = Counter("qcflow_decisions_total", "Logged decisions by kind", [*_CAMERA, "decision"])
FRAME_ERRORS = Counter("qcflow_frame_errors_total", "Frames that could not be read", _CAMERA)
SOURCE_ERRORS = Counter("qcflow_source_errors_total", "Runs stopped by an unavailable source", _CAMERA)
INSPECTION_SECONDS = Histogram(
    "qcflow_inspection_seconds",
    "Specialist time per frame",
    ["line"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DECISION_DELAY_SECONDS = Histogram(
    "qcflow_decision_delay_seconds",
    "From frame capture to its decision being logged (what a reject gate waits for)",
    ["line"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def enable_multiprocess(folder: Path) -> None:
    """Have the processes this one starts write their metrics to ``folder`` (emptied first:
    files of processes from an earlier start would otherwise count again)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def observe_logged(logged: Sequence[tuple[Frame, InspectionResult]]) -> None:
    now = datetime.now(UTC)
    for frame, result in logged:
        FRAMES.labels(frame.line_id, frame.camera_id).inc()
        DECISIONS.labels(frame.line_id, frame.camera_id, result.decision.value).inc()
        INSPECTION_SECONDS.labels(frame.line_id).observe(sum(result.timings_ms.values()) / 1000)
        DECISION_DELAY_SECONDS.labels(frame.line_id).observe((now - frame.captured_at).total_seconds())


def observe_batch(summary: BatchSummary) -> None:
    if summary.frame_errors:
        FRAME_ERRORS.labels(summary.line_id, summary.camera_id).inc(summary.frame_errors)


def observe_source_error(line_id: str, camera_id: str) -> None:
    SOURCE_ERRORS.labels(line_id, camera_id).inc()


def start_exporter(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on ``host:port`` from a daemon thread: the child processes' metrics in
    multiprocess mode, else this process's own."""
    if MULTIPROC_ENV not in os.environ:
        start_http_server(port, addr=host)
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
