"""Images/s and per-image p50/p99 latency of a batched callable (shared by the speed benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def timed(
    run: Callable[[list[np.ndarray]], object], frames: list[np.ndarray], batch: int, lanes: int = 1
) -> dict[str, float]:
    """``run`` over ``frames`` a batch at a time, from ``lanes`` threads at once (as inspection's lanes
    call the models); latency is each call's own."""
    run(frames[:batch])  # warm-up
    batches = [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]

    def call(images: list[np.ndarray]) -> float:
        t0 = time.perf_counter()
        run(images)
        return (time.perf_counter() - t0) * 1000 / batch

    started = time.perf_counter()
    with ThreadPoolExecutor(lanes) as pool:
        per_image_ms = list(pool.map(call, batches))
    total = time.perf_counter() - started
    return {
        "images_per_s": len(per_image_ms) * batch / total,
        "p50_ms": float(np.percentile(per_image_ms, 50)),
        "p99_ms": float(np.percentile(per_image_ms, 99)),
    }
