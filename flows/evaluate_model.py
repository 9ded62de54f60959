"""Prefect flow: evaluate a model on a dataset, its chunks spread over Dask workers.

The batch-job pattern for re-scoring an archive or a large test set: each task
scores one chunk (a plain function, ``pipeline.evaluate.score_chunk``), a Dask
cluster runs the tasks on several processes (or machines, given a scheduler
address), and the flow summarises the chunks into ``metrics.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from pipeline.config import THREADS_ENV
from pipeline.datasets import open_mvtec
from pipeline.evaluate import ScoredChunk, chunks_of, score_chunk, summarise, write_metrics


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE, task_run_name="score chunk {index}")
def score_chunk_task(model_dir: str, data: str, index: int, chunk_size: int) -> ScoredChunk:
    dataset = open_mvtec(Path(data))
    with_pixels = any(i.mask_path for i in dataset.test)
    return score_chunk(Path(model_dir), chunks_of(dataset, chunk_size)[index], with_pixels)


@flow(name="evaluate-model", log_prints=False)
def evaluate_model_flow(model_dir: str, data: str, out_dir: str, chunk_size: int = 64) -> dict[str, Any]:
    dataset = open_mvtec(Path(data))
    indices = range(len(chunks_of(dataset, chunk_size)))
    futures = score_chunk_task.map(unmapped(model_dir), unmapped(data), indices, unmapped(chunk_size))
    metrics = summarise(Path(model_dir), dataset, [f.result() for f in futures])
    write_metrics(metrics, Path(out_dir))
    return metrics


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """``workers`` processes sharing this machine's cores: unless ``QCFLOW_INFERENCE_THREADS`` is set,
    each gets its share of them for ONNX Runtime instead of a thread per core."""
    share = {} if THREADS_ENV in os.environ else {THREADS_ENV: str(max(1, (os.cpu_count() or 1) // workers))}
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "env": share}


def evaluate_on_dask(
    model_dir: Path, data: Path, out_dir: Path, *, workers: int = 2, scheduler: str | None = None
) -> dict[str, Any]:
    """Run the flow on a local Dask cluster of ``workers`` processes, or on an existing scheduler."""
    runner = (
        DaskTaskRunner(address=scheduler)
        if scheduler
        else DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))
    )
    flow_on_dask = evaluate_model_flow.with_options(task_runner=runner)  # type: ignore[arg-type]  # prefect-dask's generic is narrower than Prefect's stub
    return flow_on_dask(str(model_dir), str(data), str(out_dir))
