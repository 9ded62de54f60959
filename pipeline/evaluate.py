"""Score a dataset's test split with a registered model and write metrics.json.

Scoring is split into chunks (``score_chunk``) that are independent of each
other, so a flow can spread them over processes or machines and ``summarise``
the results; ``evaluate_model`` runs them one after the other.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.datasets import SEEN_IMAGES_FILE, DatasetItem, MVTecDataset
from pipeline.images import read_image, read_mask
from pipeline.metrics import image_metrics, pixel_auroc
from pipeline.specialists import AnomalyScorer, anomaly_scorer
from pipeline.types import sha256_hex

log = logging.getLogger(__name__)

CHUNK = 32


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    scores: list[float]
    maps: list[np.ndarray]  # only for items with pixel truth (good parts, defects with a mask)
    masks: list[np.ndarray]
    map_types: list[str | None]  # the defect type of each kept map; None for a good part
    seconds: float  # preprocessing + ONNX scoring, without disk reads


@functools.lru_cache(maxsize=2)
def _scorer(model_dir: str) -> AnomalyScorer:
    return anomaly_scorer(Path(model_dir))  # one session per process, reused by its chunks


def score_chunk(model_dir: Path, items: Sequence[DatasetItem], with_pixels: bool) -> ScoredChunk:
    scorer = _scorer(str(model_dir))
    images = [read_image(i.path) for i in items]
    started = time.perf_counter()
    maps, scores = scorer.score_images(images)
    seconds = time.perf_counter() - started
    kept_maps, masks, map_types = [], [], []
    if with_pixels:
        for item, m in zip(items, maps, strict=True):
            if item.is_defect and item.mask_path is None:
                continue  # defect without a mask: no pixel truth
            masks.append(read_mask(item.mask_path, m.shape) if item.mask_path else np.zeros(m.shape, bool))
            kept_maps.append(m)
            map_types.append(item.defect_type)
    return ScoredChunk([float(s) for s in scores], kept_maps, masks, map_types, seconds)


def chunks_of(dataset: MVTecDataset, size: int = CHUNK) -> list[tuple[DatasetItem, ...]]:
    return [dataset.test[i : i + size] for i in range(0, len(dataset.test), size)]


def summarise(model_dir: Path, dataset: MVTecDataset, chunks: Sequence[ScoredChunk]) -> dict[str, Any]:
    """metrics.json content from the chunks' results, in dataset order."""
    scorer = _scorer(str(model_dir))
    scores = np.array([s for c in chunks for s in c.scores])
    is_defect = np.array([i.is_defect for i in dataset.test])
    seconds = sum(c.seconds for c in chunks)
    metrics: dict[str, Any] = image_metrics(scores, is_defect, scorer.thresholds)
    has_masks = any(i.mask_path for i in dataset.test)
    maps = [m for c in chunks for m in c.maps]
    masks = [m for c in chunks for m in c.masks]
    map_types = [t for c in chunks for t in c.map_types]
    metrics["pixel_auroc"] = pixel_auroc(maps, masks) if has_masks else None
    metrics["pixel_auroc_by_defect_type"] = _pixel_auroc_by_type(maps, masks, map_types) if has_masks else {}
    metrics["images_per_second"] = len(scores) / seconds if seconds else None
    metrics["recall_by_defect_type"] = _recall_by_type(dataset, scores, scorer.thresholds.review)
    metrics["overlap_with_model_data"] = overlap_with_model_data(model_dir, dataset)
    metrics["model_version"] = scorer.version
    metrics["providers"] = list(scorer.providers)
    metrics["dataset"] = str(dataset.root)
    return metrics


def evaluate_model(model_dir: Path, dataset: MVTecDataset) -> dict[str, Any]:
    with_pixels = any(i.mask_path for i in dataset.test)
    return summarise(model_dir, dataset, [score_chunk(model_dir, c, with_pixels) for c in chunks_of(dataset)])


def overlap_with_model_data(model_dir: Path, dataset: MVTecDataset) -> dict[str, int] | None:
    """How many test images the model was fitted or calibrated on, by role (same bytes); None when the
    model has no record of its images. Any overlap makes the figures better than the line will see."""
    path = model_dir / SEEN_IMAGES_FILE
    if not path.is_file():
        return None
    seen: dict[str, list[str]] = json.loads(path.read_text())
    test = {sha256_hex(item.path.read_bytes()) for item in dataset.test}
    overlap = {role: len(test.intersection(digests)) for role, digests in seen.items()}
    for role, count in overlap.items():
        if count:
            log.warning(
                "%d of %d test images of %s are among the model's %s images: its figures are optimistic",
                count, len(dataset.test), dataset.root, role.replace("_", " "),
            )  # fmt: skip
    return overlap


def _recall_by_type(dataset: MVTecDataset, scores: np.ndarray, review: float) -> dict[str, float]:
    caught: dict[str, list[bool]] = defaultdict(list)
    for item, score in zip(dataset.test, scores, strict=True):
        if item.defect_type:
            caught[item.defect_type].append(bool(score >= review))
    return {k: float(np.mean(v)) for k, v in sorted(caught.items())}


def _pixel_auroc_by_type(
    maps: list[np.ndarray], masks: list[np.ndarray], map_types: list[str | None]
) -> dict[str, float | None]:
    """Each defect type's pixels against the good parts' pixels.

    The pooled figure weighs every defect pixel alike, so a type with large masks
    dominates it; this shows how well each kind of defect is localised.
    """
    result = {}
    for kind in sorted({t for t in map_types if t is not None}):
        keep = [i for i, t in enumerate(map_types) if t in (kind, None)]
        result[kind] = pixel_auroc([maps[i] for i in keep], [masks[i] for i in keep])
    return result


def write_metrics(metrics: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return path
