"""How close each test image of a dataset is to its nearest training image, and what that does to a model.

    python bench/near_copies.py DATA [--model-dir MODEL_DIR]

A test image that is a near-copy of a training image (the same part photographed again, or an
overlapping crop) scores lower than a new part would, so good test images with such twins make
image AUROC look better than the line will see it. Each image becomes a 24 × 24 grey thumbnail,
centred and scaled to unit length; an image's similarity to the training set is the largest cosine
against the thumbnails of ``DATA/train/good``. Prints its median and 90th percentile for the good test
images and for each defect type; with ``--model-dir`` (a model fitted on ``DATA``), also the model's
median image score for the good test images by how close their twin is, and the image AUROC with only
the good test images that have no twin above 0.95 / 0.97.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from pipeline.datasets import open_mvtec
from pipeline.images import read_image
from pipeline.metrics import image_metrics
from pipeline.specialists import anomaly_scorer

THUMB = 24
BANDS = ((0.0, 0.95), (0.95, 0.98), (0.98, 0.99), (0.99, 1.01))


def thumbnail(path: Path) -> np.ndarray:
    """The image as a THUMB × THUMB grey vector, centred and of unit length: cosines compare layouts."""
    grey = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY)
    v = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset in MVTec layout")
    parser.add_argument("--model-dir", type=Path, help="a model fitted on DATA: scores by twin closeness")
    args = parser.parse_args()
    dataset = open_mvtec(args.data)
    train = np.stack([thumbnail(p) for p in dataset.train_good])
    items = list(dataset.test)
    nearest = np.array([float((train @ thumbnail(i.path)).max()) for i in items])
    kinds = np.array([i.defect_type or "good" for i in items])
    print(f"{'test images':<12}{'n':>5}{'median':>8}{'p90':>7}   (cosine to the nearest train/good one)")
    for kind in ["good", *dataset.defect_types]:
        c = nearest[kinds == kind]
        print(f"{kind:<12}{c.size:>5}{np.median(c):>8.3f}{np.percentile(c, 90):>7.3f}")
    if args.model_dir is None:
        return
    scorer = anomaly_scorer(args.model_dir)
    chunks = [items[s : s + 32] for s in range(0, len(items), 32)]
    scores = np.concatenate([scorer.score_images([read_image(i.path) for i in c])[1] for c in chunks])
    good = kinds == "good"
    for low, high in BANDS:
        band = good & (nearest >= low) & (nearest < high)
        median = f"{np.median(scores[band]):.2f}" if band.any() else "-"
        print(f"good, twin at {low:.2f}-{min(high, 1):.2f}: {band.sum():>4}, median score {median}")
    print(f"defective test images: {np.sum(~good)}, median score {np.median(scores[~good]):.2f}")
    is_defect = ~good
    for limit in (0.95, 0.97, 1.01):
        keep = is_defect | (nearest < limit)
        auroc = image_metrics(scores[keep], is_defect[keep], scorer.thresholds)["image_auroc"]
        which = "every good test image" if limit > 1 else f"good test images without a twin above {limit}"
        print(f"image AUROC, {which} ({np.sum(good & keep)}): {auroc:.3f}")


if __name__ == "__main__":
    main()
