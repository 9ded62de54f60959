"""Where a model's pixel AUROC is lost: each defect type's pixels against the defect-free pixels of each
kind of test image.

    python bench/pixel_negatives.py MODEL_DIR DATA [--margin 40]

The pooled pixel AUROC of ``qcflow evaluate`` ranks every defect pixel against every pixel outside the
masks, in good images and in defective ones alike. This prints the AUROC of each type's defect pixels
against the outside pixels of each image type alone (one row per type, one column per image type), and
each image type's median map value more than ``--margin`` map pixels from any mask: a column that is
low everywhere is an image type whose whole surface scores high, not only its defects.

Then two bounds on what any per-image correction of the map's level could gain: each type's AUROC within
its own images (defect pixels against the same image's other pixels), and the pooled AUROC once every
map is shifted so that its pixels outside the mask have the good images' median, an offset only the
masks can tell.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pipeline.datasets import open_mvtec
from pipeline.evaluate import chunks_of, score_chunk
from pipeline.metrics import auroc_by_counting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("data", type=Path, help="MVTec layout with ground_truth masks")
    parser.add_argument("--margin", type=float, default=40, help="map pixels from the nearest mask")
    args = parser.parse_args()
    chunks = [score_chunk(args.model_dir, c, with_pixels=True) for c in chunks_of(open_mvtec(args.data))]
    by_kind: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for chunk in chunks:
        for m, mask, kind in zip(chunk.maps, chunk.masks, chunk.map_types, strict=True):
            by_kind[kind or "good"].append((m, mask))
    columns = sorted(by_kind)
    outside = {k: np.concatenate([m[~mask].ravel() for m, mask in by_kind[k]]) for k in columns}
    print(f"{sum(map(len, by_kind.values()))} maps; rows: defect pixels of a type; columns: pixels outside")
    print("the masks of an image type")
    print(f"{'':<12}" + "".join(f"{k:>12}" for k in columns) + f"{'all':>12}")
    for row in columns:
        if row == "good":
            continue
        inside = np.concatenate([m[mask].ravel() for m, mask in by_kind[row]])
        cells = [_auroc(inside, outside[k]) for k in columns]
        cells.append(_auroc(inside, np.concatenate(list(outside.values()))))
        print(f"{row:<12}" + "".join(f"{v:>12.3f}" for v in cells))
    print(f"median map value more than {args.margin:g} map pixels from any mask:")
    for k in columns:
        far = [np.median(m[_far_from(mask, args.margin)]) for m, mask in by_kind[k]]
        print(f"  {k:<12}{np.median(far):10.2f}  ({len(far)} images)")
    print("AUROC within each image (defect pixels against the rest of that image): median, mean")
    for k in columns:
        within = [_auroc(m[mask], m[~mask]) for m, mask in by_kind[k] if mask.any() and not mask.all()]
        if within:
            print(f"  {k:<12}{np.median(within):10.3f}{np.mean(within):10.3f}  ({len(within)} images)")
    good_level = np.median(outside["good"]) if "good" in outside else 0.0
    shifted = [(m - np.median(m[~mask]) + good_level, mask) for maps in by_kind.values() for m, mask in maps]
    inside_all = np.concatenate([m[mask].ravel() for m, mask in shifted])
    outside_all = np.concatenate([m[~mask].ravel() for m, mask in shifted])
    print(f"pooled AUROC with each map's level set from its mask: {_auroc(inside_all, outside_all):.3f}")


def _auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    truth = np.r_[np.ones(positive.size, bool), np.zeros(negative.size, bool)]
    return auroc_by_counting(np.r_[positive, negative], truth)


def _far_from(mask: np.ndarray, margin: float) -> np.ndarray:
    if not mask.any():
        return np.ones_like(mask)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) > margin


if __name__ == "__main__":
    main()
