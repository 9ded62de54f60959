"""Prefect flow: remove the stored pictures of old, passed frames (``retention`` in qcflow.yaml).

Deployed by ``qcflow serve`` on the retention schedule when ``keep_passed_images_days`` is set;
the rows stay, see ``pipeline.retention``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows.inspect_line import workspace_for
from pipeline.retention import prune_images as prune
from pipeline.retention import retention_days


@flow(name="prune-images")
def prune_images(
    data_dir: str | None = None,
    config_dir: str | None = None,
    older_than_days: float | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    ws = workspace_for(data_dir, config_dir, database_url)
    return asdict(prune(ws, retention_days(ws, older_than_days), by="flow:prune-images"))
