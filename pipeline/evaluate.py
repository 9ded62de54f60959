"""Score a dataset's test split with a registered model and write metrics.json."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.datasets import MVTecDataset
from pipeline.images import read_image, read_mask
from pipeline.metrics import image_metrics, pixel_auroc
from pipeline.specialists import anomaly_scorer

CHUNK = 32


def evaluate_model(model_dir: Path, dataset: MVTecDataset) -> dict[str, Any]:
    inspector = anomaly_scorer(Path(model_dir))
    scores: list[float] = []
    maps: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    scoring_seconds = 0.0
    items = dataset.test
    has_masks = any(i.mask_path for i in items)
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        images = [read_image(i.path) for i in chunk]
        t0 = time.perf_counter()
        chunk_maps, chunk_scores = inspector.score_images(images)
        scoring_seconds += time.perf_counter() - t0
        scores.extend(float(s) for s in chunk_scores)
        if has_masks:
            for item, m in zip(chunk, chunk_maps, strict=True):
                if item.is_defect and item.mask_path is None:
                    continue  # defect without a mask: no pixel truth
                masks.append(
                    read_mask(item.mask_path, m.shape) if item.mask_path else np.zeros(m.shape, bool)
                )
                maps.append(m)
    is_defect = np.array([i.is_defect for i in items])
    metrics: dict[str, Any] = image_metrics(np.array(scores), is_defect, inspector.thresholds)
    metrics["pixel_auroc"] = pixel_auroc(maps, masks) if has_masks else None
    metrics["images_per_second"] = len(items) / scoring_seconds if scoring_seconds else None
    metrics["recall_by_defect_type"] = _recall_by_type(dataset, np.array(scores), inspector.thresholds.review)
    metrics["model_version"] = inspector.version
    metrics["providers"] = list(inspector.providers)
    metrics["dataset"] = str(dataset.root)
    return metrics


def _recall_by_type(dataset: MVTecDataset, scores: np.ndarray, review: float) -> dict[str, float]:
    caught: dict[str, list[bool]] = defaultdict(list)
    for item, score in zip(dataset.test, scores, strict=True):
        if item.defect_type:
            caught[item.defect_type].append(bool(score >= review))
    return {k: float(np.mean(v)) for k, v in sorted(caught.items())}


def write_metrics(metrics: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return path
