"""Images/s and per-image p50/p99 latency of a batched callable (shared by the speed benchmarks)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

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


def cpu_description() -> str:
    """The CPU's model name and the vector extensions that change ONNX Runtime's kernels (8-bit products
    saturate and run at float32 speed without VNNI), so that a printed figure names its machine."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return platform.processor() or platform.machine()
    fields = {}
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name") or platform.machine()
    flags = set(fields.get("flags", "").split())
    present = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name} ({', '.join(present) or 'no AVX2'})"
