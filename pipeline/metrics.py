"""Accuracy figures for anomaly scores against ground truth."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.decide import Thresholds


def image_metrics(
    scores: np.ndarray, is_defect: np.ndarray, thresholds: Thresholds
) -> dict[str, float | int]:
    """AUROC/AP, and the line's error rates at the calibrated thresholds.

    escape: a defective part PASSES (below the review threshold, no person sees it).
    false reject: a good part FAILS outright. Scores in between go to review.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_defect = np.asarray(is_defect, dtype=bool)
    good, bad = scores[~is_defect], scores[is_defect]
    both = good.size > 0 and bad.size > 0
    review_band = (scores >= thresholds.review) & (scores < thresholds.fail)
    return {
        "image_auroc": float(roc_auc_score(is_defect, scores)) if both else float("nan"),
        "image_ap": float(average_precision_score(is_defect, scores)) if both else float("nan"),
        "threshold": thresholds.fail,
        "review_threshold": thresholds.review,
        "false_reject_rate": float(np.mean(good >= thresholds.fail)) if good.size else float("nan"),
        "escape_rate": float(np.mean(bad < thresholds.review)) if bad.size else float("nan"),
        "review_rate": float(np.mean(review_band)),
        "n_good": int(good.size),
        "n_defect": int(bad.size),
    }


def pixel_auroc(maps: list[np.ndarray], masks: list[np.ndarray]) -> float | None:
    """Pixel-level AUROC over all given maps and masks of the same shapes; None if no positives."""
    if not maps:
        return None
    truth = np.concatenate([m.ravel() for m in masks]).astype(bool)
    if not truth.any() or truth.all():
        return None
    return float(roc_auc_score(truth, np.concatenate([m.ravel() for m in maps])))
