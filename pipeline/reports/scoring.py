"""Run one model over a suite: scores, small anomaly maps for pixel metrics, and latency.

Maps are kept at ``MAP_SIZE``² (area-averaged) rather than at model resolution, so a
5,000-item suite needs about 80 MB instead of 1 GB; a low-resolution mask pixel counts as
defective when any of its source pixels is, so small defects are not lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.decide import Thresholds
from pipeline.errors import FrameError
from pipeline.images import decode_image
from pipeline.reports.suites import SuiteItem
from pipeline.specialists import AnomalyScorer
from pipeline.storage import ImageStore

MAP_SIZE = 64
BATCH = 32


@dataclass(frozen=True, slots=True)
class Latency:
    """Model time per image (preprocessing + inference, no disk reads), over batches of ``batch_size``."""

    batch_size: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    images_per_second: float


@dataclass(frozen=True, slots=True)
class ScoredSuite:
    """One model's output on a suite, in item order."""

    model_name: str
    model_version: str
    thresholds: Thresholds
    scores: np.ndarray = field(repr=False)  # (N,)
    maps: np.ndarray = field(repr=False)  # (N, MAP_SIZE, MAP_SIZE) float32
    latency: Latency


def _shrink(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image.astype(np.float32), (MAP_SIZE, MAP_SIZE), interpolation=cv2.INTER_AREA)


def load_masks(store: ImageStore, items: Sequence[SuiteItem]) -> np.ndarray | None:
    """Masks at MAP_SIZE² (bool) for every item (all-false for good ones); None if no item has one."""
    if not any(i.mask_sha256 for i in items):
        return None
    masks = np.zeros((len(items), MAP_SIZE, MAP_SIZE), bool)
    for k, item in enumerate(items):
        if item.mask_sha256:
            raw = cv2.imdecode(np.frombuffer(store.get(item.mask_sha256), np.uint8), cv2.IMREAD_GRAYSCALE)
            if raw is None:
                raise FrameError(f"mask {item.mask_sha256} of suite item {item.image_sha256}: not decodable")
            masks[k] = _shrink((raw > 127).astype(np.float32)) > 0
    return masks


def score_suite(
    store: ImageStore, items: Sequence[SuiteItem], scorer: AnomalyScorer, model_name: str
) -> ScoredSuite:
    scores = np.empty(len(items), np.float64)
    maps = np.empty((len(items), MAP_SIZE, MAP_SIZE), np.float32)
    per_image_ms: list[float] = []
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        images = [decode_image(store.get(i.image_sha256), f"suite item {i.image_sha256}") for i in chunk]
        t0 = time.perf_counter()
        chunk_maps, chunk_scores = scorer.score_images(images)
        per_image_ms.append((time.perf_counter() - t0) * 1000 / len(chunk))
        scores[start : start + len(chunk)] = chunk_scores
        for k, m in enumerate(chunk_maps):
            maps[start + k] = _shrink(m)
    return ScoredSuite(model_name, scorer.version, scorer.thresholds, scores, maps, _latency(per_image_ms))


def _latency(per_image_ms: list[float]) -> Latency:
    ms = np.asarray(per_image_ms or [np.nan])
    mean = float(np.mean(ms))
    return Latency(
        BATCH,
        mean,
        float(np.median(ms)),
        float(np.quantile(ms, 0.95)),
        1000.0 / mean if mean > 0 else float("nan"),
    )
