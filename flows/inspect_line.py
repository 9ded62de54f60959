"""Prefect flow: inspect the new frames of every camera of one line.

Thin by design: each task is a call to ``pipeline.inspection.inspect_camera``,
which is tested without Prefect. Task parameters are ids and paths.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from pipeline import metrics_exporter
from pipeline.config import load_line
from pipeline.errors import SourceUnavailable
from pipeline.events import event_sink_for
from pipeline.inspection import BatchSummary, OnLogged, Workspace, inspect_camera, open_workspace
from pipeline.types import Frame, InspectionResult


@functools.lru_cache(maxsize=4)
def workspace_for(data_dir: str | None, config_dir: str | None, database_url: str | None) -> Workspace:
    return open_workspace(
        Path(data_dir) if data_dir else None, Path(config_dir) if config_dir else None, database_url
    )


def _after_logged(ws: Workspace) -> OnLogged:
    """Count what a chunk logged and queue its line events (when the installation has a broker)."""
    publish = event_sink_for(ws.data_dir, ws.config_dir)

    def after_logged(logged: Sequence[tuple[Frame, InspectionResult]]) -> None:
        metrics_exporter.observe_logged(logged)
        if publish is not None:
            publish(logged)

    return after_logged


@task(
    retries=2,
    retry_delay_seconds=[2, 10],
    cache_policy=NO_CACHE,
    task_run_name="inspect {line_id}/{camera_id}",
)
def inspect_camera_task(
    line_id: str,
    camera_id: str,
    max_frames: int | None,
    source: str | None,
    data_dir: str | None,
    config_dir: str | None,
    database_url: str | None,
) -> BatchSummary:
    ws = workspace_for(data_dir, config_dir, database_url)
    run_id = flow_run.get_id()
    try:
        summary = inspect_camera(
            ws,
            ws.line(line_id),
            camera_id,
            max_frames=max_frames,
            source_uri=source,
            flow_run_id=str(run_id) if run_id else None,
            on_logged=_after_logged(ws),
        )
    except SourceUnavailable:
        metrics_exporter.observe_source_error(line_id, camera_id)
        raise
    metrics_exporter.observe_batch(summary)
    return summary


@flow(name="inspect-line", log_prints=False)
def inspect_line(
    line_id: str,
    max_frames: int | None = None,
    source: str | None = None,
    camera_id: str | None = None,
    data_dir: str | None = None,
    config_dir: str | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Inspect up to ``max_frames`` new frames per camera (default: the line's batch size).

    ``source`` replaces the configured source of one camera (``camera_id``, or
    the line's first camera) for an ad-hoc run.
    """
    ws = workspace_for(data_dir, config_dir, database_url)
    line = load_line(ws.config_dir, line_id)
    cameras = [camera_id] if camera_id else [c.camera_id for c in line.cameras]
    if source and not camera_id:
        cameras = cameras[:1]
    total = BatchSummary(line_id, ",".join(cameras))
    for cam in cameras:
        total.merge(
            inspect_camera_task(line_id, cam, max_frames, source, data_dir, str(ws.config_dir), database_url)
        )
    return {
        "line_id": line_id,
        "frames": total.frames,
        "new_inspections": total.new_inspections,
        "frame_errors": total.frame_errors,
        "decisions": dict(total.decisions),
        "scored_truth": total.scored_truth,
        "seconds": total.seconds,
    }
