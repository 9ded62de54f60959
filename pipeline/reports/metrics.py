"""What a report measures for one model on one group of suite items.

Headline figures come from ``pipeline.metrics`` (the same AUROC / AP / rates that
``qcflow evaluate`` writes); this module adds what a release decision also needs:
intervals, the confusion matrix at the calibrated thresholds, recall per defect class,
the REVIEW-band share and the per-region-overlap (PRO) localisation score.

Decisions follow ``pipeline.decide``: FAIL at or above ``fail``, REVIEW at or above
``review``, PASS below. An escape is a defective part that PASSES (no person sees it);
a false reject is a good part that FAILS; a defect is "caught" unless it PASSES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pipeline.decide import Thresholds
from pipeline.metrics import image_metrics, pixel_auroc
from pipeline.reports.stats import Interval, auroc_interval, finite_or_none, wilson_interval
from pipeline.types import Decision

PRO_MAX_FPR = 0.3  # integrate the PRO curve up to 30% false-positive pixels, as in MVTec AD
PRO_THRESHOLDS = 200


def decisions(scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Decision per score as a string array; a NaN score goes to REVIEW, as ``decide`` does."""
    out = np.full(scores.shape, Decision.PASS.value, dtype=object)
    out[scores >= thresholds.review] = Decision.REVIEW.value
    out[scores >= thresholds.fail] = Decision.FAIL.value
    out[np.isnan(scores)] = Decision.REVIEW.value
    return out


@dataclass(frozen=True, slots=True)
class ClassRecall:
    defect_class: str
    caught: int
    total: int
    recall: Interval


@dataclass(frozen=True, slots=True)
class GroupMetrics:
    """One model on one group of items (real, or real goods with synthetic defects)."""

    n_good: int
    n_defect: int
    image_auroc: Interval
    image_ap: float
    pixel_auroc: float | None
    pro: float | None
    confusion: dict[str, dict[str, int]]  # truth ("good"/"defect") -> decision -> count
    escape_rate: Interval
    false_reject_rate: Interval
    review_rate: Interval
    recall_by_class: tuple[ClassRecall, ...]

    def flat(self) -> dict[str, float | None]:
        """Point values by metric name: what the gate and the history compare."""
        return {
            "image_auroc": finite_or_none(self.image_auroc.value),
            "image_ap": finite_or_none(self.image_ap),
            "pixel_auroc": self.pixel_auroc,
            "pro": self.pro,
            "escape_rate": finite_or_none(self.escape_rate.value),
            "false_reject_rate": finite_or_none(self.false_reject_rate.value),
            "review_rate": finite_or_none(self.review_rate.value),
            "min_class_recall": min(
                (finite_or_none(c.recall.value) or 0.0 for c in self.recall_by_class), default=None
            ),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            **self.flat(),
            "n_good": self.n_good,
            "n_defect": self.n_defect,
            "image_auroc_ci": self.image_auroc.as_json(),
            "escape_rate_ci": self.escape_rate.as_json(),
            "false_reject_rate_ci": self.false_reject_rate.as_json(),
            "review_rate_ci": self.review_rate.as_json(),
            "confusion": self.confusion,
            "recall_by_class": {
                c.defect_class: {"caught": c.caught, "total": c.total, **c.recall.as_json()}
                for c in self.recall_by_class
            },
        }


def group_metrics(
    scores: np.ndarray,
    is_defect: np.ndarray,
    defect_classes: np.ndarray,
    thresholds: Thresholds,
    maps: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> GroupMetrics:
    """All figures for one group; ``maps``/``masks`` (N×h×w) give the pixel metrics when present."""
    is_defect = np.asarray(is_defect, bool)
    base = image_metrics(scores, is_defect, thresholds)
    decided = decisions(scores, thresholds)
    good, bad = ~is_defect, is_defect
    confusion = {
        truth: {d.value: int(np.sum(rows & (decided == d.value))) for d in Decision}
        for truth, rows in (("good", good), ("defect", bad))
    }
    escapes = confusion["defect"][Decision.PASS.value]
    false_rejects = confusion["good"][Decision.FAIL.value]
    in_review = confusion["good"][Decision.REVIEW.value] + confusion["defect"][Decision.REVIEW.value]
    pixel = _pixel_metrics(maps, masks, is_defect)
    return GroupMetrics(
        n_good=int(good.sum()),
        n_defect=int(bad.sum()),
        image_auroc=auroc_interval(scores, is_defect),
        image_ap=float(base["image_ap"]),
        pixel_auroc=pixel[0],
        pro=pixel[1],
        confusion=confusion,
        escape_rate=wilson_interval(escapes, int(bad.sum())),
        false_reject_rate=wilson_interval(false_rejects, int(good.sum())),
        review_rate=wilson_interval(in_review, int(scores.size)),
        recall_by_class=_recall_by_class(decided, is_defect, defect_classes),
    )


def _recall_by_class(
    decided: np.ndarray, is_defect: np.ndarray, classes: np.ndarray
) -> tuple[ClassRecall, ...]:
    out = []
    # Defects of unknown class (e.g. a person's FAIL on an inspection) count in the rates, not here.
    for name in sorted({str(c) for c in classes[is_defect]} - {""}):
        rows = is_defect & (classes == name)
        caught = int(np.sum(rows & (decided != Decision.PASS.value)))
        out.append(ClassRecall(name, caught, int(rows.sum()), wilson_interval(caught, int(rows.sum()))))
    return tuple(out)


def _pixel_metrics(
    maps: np.ndarray | None, masks: np.ndarray | None, is_defect: np.ndarray
) -> tuple[float | None, float | None]:
    """Pixel AUROC and PRO over good items and defective items that have a mask."""
    if maps is None or masks is None:
        return None, None
    # A defective item without a mask has no pixel truth; leaving it out avoids counting its defect as good.
    usable = ~is_defect | masks.reshape(len(masks), -1).any(axis=1)
    maps, masks = maps[usable], masks[usable]
    return pixel_auroc(list(maps), list(masks)), pro_score(maps, masks)


def pro_score(maps: np.ndarray, masks: np.ndarray, max_fpr: float = PRO_MAX_FPR) -> float | None:
    """Normalised area under the per-region-overlap curve up to ``max_fpr`` (MVTec AD's PRO).

    For each threshold: PRO is the mean, over every connected defect region of every mask,
    of the share of that region's pixels at or above the threshold; FPR is the share of
    defect-free pixels at or above it. The area up to ``max_fpr`` is divided by ``max_fpr``,
    so a perfect map scores 1.
    """
    regions = [
        m[labels == k]
        for m, mask in zip(maps, masks, strict=True)
        if mask.any()
        for count, labels in [cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)]
        for k in range(1, count)
    ]
    negatives = np.sort(maps[~masks].ravel())
    if not regions or negatives.size == 0:
        return None
    lo, hi = float(min(negatives[0], min(r.min() for r in regions))), float(maps.max())
    thresholds = np.linspace(hi, lo, PRO_THRESHOLDS)  # high to low: FPR rises from 0 to 1
    fpr = 1.0 - np.searchsorted(negatives, thresholds, side="left") / negatives.size
    overlap = np.mean(
        [1.0 - np.searchsorted(np.sort(r), thresholds, side="left") / r.size for r in regions], axis=0
    )
    fpr, overlap = np.concatenate([[0.0], fpr]), np.concatenate([[0.0], overlap])
    keep = fpr <= max_fpr
    # Close the curve exactly at max_fpr by interpolating between the last kept and first dropped point.
    end = np.interp(max_fpr, fpr, overlap) if not keep.all() else overlap[-1]
    x = np.concatenate([fpr[keep], [max_fpr]])
    y = np.concatenate([overlap[keep], [end]])
    return float(np.trapezoid(y, x) / max_fpr)
