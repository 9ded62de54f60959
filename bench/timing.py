"""Images/s and per-image p50/p99 latency of a batched callable (shared by the speed benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed(
    run: Callable[[list[np.ndarray]], object], frames: list[np.ndarray], batch: int
) -> dict[str, float]:
    run(frames[:batch])  # warm-up
    per_image_ms = []
    started = time.perf_counter()
    for i in range(0, len(frames) - batch + 1, batch):
        t0 = time.perf_counter()
        run(frames[i : i + batch])
        per_image_ms.append((time.perf_counter() - t0) * 1000 / batch)
    total = time.perf_counter() - started
    return {
        "images_per_s": len(per_image_ms) * batch / total,
        "p50_ms": float(np.percentile(per_image_ms, 50)),
        "p99_ms": float(np.percentile(per_image_ms, 99)),
    }
