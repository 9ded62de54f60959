"""Automatic pre-screen of a generated image: metrics that sort the review queue, never a decision.

- mask/defect overlap: where the image changed against its real base frame,
  and how much of the mask changed (a defect outside its mask would make the
  mask a wrong ground truth; an unchanged mask is no defect at all);
- realism: how close the grey level and contrast inside the mask are to the
  real defects of that class (statistics saved with the generator);
- the anomaly specialist (when one is given): its score, and whether its heat
  map peaks inside the mask, i.e. it finds the defect where the mask says.

``priority`` (0..1, higher first) orders the queue; ``flags`` say what looked wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

CHANGE_LEVEL = 8  # grey levels: below this a pixel counts as unchanged (resampling, rounding)
MIN_INSIDE_SHARE = 0.9
MIN_MASK_COVERAGE = 0.2
MIN_REALISM = 0.3


@dataclass(frozen=True, slots=True)
class AnomalyView:
    """The anomaly specialist's view of one generated image."""

    heatmap: np.ndarray  # any resolution; resized to the image
    score: float
    review_threshold: float


@dataclass(frozen=True, slots=True)
class PrescreenResult:
    changed_inside_mask: float
    mask_coverage: float
    realism: float
    anomaly_score: float | None
    anomaly_peak_in_mask: bool | None
    priority: float
    flags: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "flags": list(self.flags)}


def realism_score(grey_inside: np.ndarray, stats: dict[str, float] | None) -> float:
    """exp(-z²/2) averaged over mean and contrast, z measured in the spread of real defects of the class."""
    if stats is None or grey_inside.size == 0:
        return 0.0
    z_mean = (grey_inside.mean() - stats["mean"]) / stats["mean_spread"]
    z_contrast = (grey_inside.std() - stats["contrast"]) / stats["contrast_spread"]
    return float((np.exp(-0.5 * z_mean**2) + np.exp(-0.5 * z_contrast**2)) / 2)


def prescreen(
    base: np.ndarray,
    generated: np.ndarray,
    mask: np.ndarray,
    class_stats: dict[str, float] | None,
    anomaly: AnomalyView | None = None,
) -> PrescreenResult:
    """Metrics of one generated image (BGR) against its base frame and its mask (bool)."""
    grey_base = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY).astype(np.int16)
    grey = cv2.cvtColor(generated, cv2.COLOR_BGR2GRAY)
    changed = np.abs(grey.astype(np.int16) - grey_base) >= CHANGE_LEVEL
    near_mask = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    inside = float((changed & near_mask).sum() / max(1, changed.sum()))
    coverage = float((changed & mask).sum() / max(1, mask.sum()))
    realism = realism_score(grey[mask].astype(np.float64), class_stats)
    flags = []
    if changed.any() and inside < MIN_INSIDE_SHARE:
        flags.append("changes outside the mask")
    if coverage < MIN_MASK_COVERAGE:
        flags.append("mask barely changed")
    if realism < MIN_REALISM:
        flags.append("unlike real defects of this class")
    peak_in_mask, score = None, None
    if anomaly is not None:
        heat = cv2.resize(anomaly.heatmap.astype(np.float32), (mask.shape[1], mask.shape[0]))
        peak_in_mask = bool(near_mask.flat[int(np.argmax(heat))])
        score = anomaly.score
        if score < anomaly.review_threshold:
            flags.append("anomaly specialist sees no defect")
        elif not peak_in_mask:
            flags.append("anomaly specialist finds the defect outside the mask")
    checks = [inside, min(1.0, coverage / MIN_MASK_COVERAGE), realism]
    if anomaly is not None:
        checks.append(float(bool(peak_in_mask) and anomaly.score >= anomaly.review_threshold))
    return PrescreenResult(
        changed_inside_mask=inside,
        mask_coverage=coverage,
        realism=realism,
        anomaly_score=score,
        anomaly_peak_in_mask=peak_in_mask,
        priority=float(np.mean(checks)),
        flags=tuple(flags),
    )
