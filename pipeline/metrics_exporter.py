"""Prometheus metrics of inspection: frames, decisions, latencies, frame and source errors.

Flow runs started by ``qcflow serve`` are child processes, so the serve process
exports the sum of all of them through prometheus-client's multiprocess mode:
``enable_multiprocess`` must run before ``prometheus_client`` is first imported
(Prefect imports it too), and the children inherit the folder it names.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.inspection import BatchSummary
from pipeline.types import Frame, InspectionResult

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class _Metrics:
    frames: Any
    decisions: Any
    frame_errors: Any
    source_errors: Any
    inspection_seconds: Any
    decision_delay_seconds: Any


@functools.cache
def _metrics() -> _Metrics:
    """Created on first use, so that ``enable_multiprocess`` can still run before the import."""
    from prometheus_client import Counter, Histogram

    labels = ["line", "camera"]
    return _Metrics(
        frames=Counter("qcflow_frames_inspected_total", "Frames inspected and logged", labels),
        decisions=Counter("qcflow_decisions_total", "Logged decisions by kind", [*labels, "decision"]),
        frame_errors=Counter("qcflow_frame_errors_total", "Frames that could not be read", labels),
        source_errors=Counter("qcflow_source_errors_total", "Runs stopped by an unavailable source", labels),
        inspection_seconds=Histogram(
            "qcflow_inspection_seconds",
            "Specialist time per frame",
            ["line"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
        decision_delay_seconds=Histogram(
            "qcflow_decision_delay_seconds",
            "From frame capture to its decision being logged (what a reject gate waits for)",
            ["line"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        ),
    )


def enable_multiprocess(folder: Path) -> None:
    """Collect the metrics of this process and its children in ``folder`` (emptied first:
    files of dead processes would otherwise count again)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("enable_multiprocess must run before prometheus_client is imported")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def observe_logged(logged: Sequence[tuple[Frame, InspectionResult]]) -> None:
    metrics, now = _metrics(), datetime.now(UTC)
    for frame, result in logged:
        metrics.frames.labels(frame.line_id, frame.camera_id).inc()
        metrics.decisions.labels(frame.line_id, frame.camera_id, result.decision.value).inc()
        metrics.inspection_seconds.labels(frame.line_id).observe(sum(result.timings_ms.values()) / 1000)
        delay = (now - frame.captured_at).total_seconds()
        metrics.decision_delay_seconds.labels(frame.line_id).observe(delay)


def observe_batch(summary: BatchSummary) -> None:
    if summary.frame_errors:
        _metrics().frame_errors.labels(summary.line_id, summary.camera_id).inc(summary.frame_errors)


def observe_source_error(line_id: str, camera_id: str) -> None:
    _metrics().source_errors.labels(line_id, camera_id).inc()


def start_exporter(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on ``host:port`` from a daemon thread (every process's metrics when
    multiprocess mode is on)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    _metrics()  # the series exist (at zero) before the first scrape
    if MULTIPROC_ENV not in os.environ:
        start_http_server(port, addr=host)
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
