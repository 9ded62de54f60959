"""Prefect flow: generate synthetic defects for one line, all pending review.

Thin by design: the work is ``pipeline.generation.generate_defects``, tested
without Prefect. The flow refuses to run at all unless ``generators.enabled``
is true in the installation's config. No retries: a retry would make new
images, and a failed batch leaves nothing behind to resume.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.generation import (
    GenerationRequest,
    generate_defects,
    line_anomaly_scorer,
    load_generator,
    require_generation_enabled,
)
from pipeline.inspection import open_workspace


@task(cache_policy=NO_CACHE, task_run_name="generate {defect_class} for {line_id}")
def generate_task(
    line_id: str,
    defect_class: str,
    count: int,
    seed: int,
    base_images: str,
    generator: str | None,
    data_dir: str | None,
    config_dir: str | None,
    database_url: str | None,
) -> list[int]:
    ws = open_workspace(
        Path(data_dir) if data_dir else None, Path(config_dir) if config_dir else None, database_url
    )
    request = GenerationRequest(line_id, defect_class, count, seed, base_images)
    return generate_defects(ws, request, load_generator(ws, generator), line_anomaly_scorer(ws, line_id))


@flow(name="generate-defects", log_prints=False)
def generate_defects_flow(
    line_id: str,
    defect_class: str,
    count: int,
    seed: int = 0,
    base_images: str = "good",
    generator: str | None = None,
    data_dir: str | None = None,
    config_dir: str | None = None,
    database_url: str | None = None,
) -> list[int]:
    """Ids of the synthetic images recorded (pending); refuses when generation is disabled."""
    ws = open_workspace(
        Path(data_dir) if data_dir else None, Path(config_dir) if config_dir else None, database_url
    )
    require_generation_enabled(ws.config_dir)
    return generate_task(
        line_id, defect_class, count, seed, base_images, generator, data_dir, config_dir, database_url
    )
