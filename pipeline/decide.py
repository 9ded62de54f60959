"""PASS / FAIL / REVIEW from a score and calibrated thresholds.

Scores between ``review`` and ``fail`` are the unsure band: a person decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.types import Decision, Finding, FindingKind


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score at or above ``fail`` fails; between ``review`` and ``fail`` goes to a person."""

    review: float
    fail: float
    target_false_reject: float = 0.01
    calibrated_on: int = 0

    def __post_init__(self) -> None:
        if not self.review <= self.fail:
            raise ValueError(f"review threshold {self.review} must not exceed fail threshold {self.fail}")


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    reason: str


def decide(score: float | None, thresholds: Thresholds | None) -> Verdict:
    if score is None or thresholds is None:
        return Verdict(Decision.REVIEW, "no anomaly score: no specialist scored this frame")
    if not math.isfinite(score):
        return Verdict(Decision.REVIEW, f"anomaly score is {score}: the model gave no usable score")
    if score >= thresholds.fail:
        return Verdict(Decision.FAIL, f"anomaly score {score:.3f} ≥ fail threshold {thresholds.fail:.3f}")
    if score >= thresholds.review:
        return Verdict(
            Decision.REVIEW,
            f"anomaly score {score:.3f} in review band [{thresholds.review:.3f}, {thresholds.fail:.3f})",
        )
    return Verdict(Decision.PASS, f"anomaly score {score:.3f} < review threshold {thresholds.review:.3f}")


def calibrate_thresholds(
    good_scores: np.ndarray, *, target_false_reject: float = 0.01, target_review_rate: float = 0.05
) -> Thresholds:
    """Thresholds from held-out good parts' scores.

    ``fail`` is the (1 - target_false_reject) quantile: about that share of good
    parts fail. ``review`` is the (1 - target_review_rate) quantile: about that
    share of good parts go to a person. Quantiles round up (method "higher") so
    a small calibration set errs towards fewer false rejects.
    """
    scores = np.asarray(good_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("calibration needs at least one good score")
    if not 0 < target_false_reject <= target_review_rate < 1:
        raise ValueError(
            f"need 0 < target_false_reject ({target_false_reject}) <= target_review_rate "
            f"({target_review_rate}) < 1"
        )
    fail = float(np.quantile(scores, 1 - target_false_reject, method="higher"))
    review = float(np.quantile(scores, 1 - target_review_rate, method="higher"))
    return Thresholds(review, fail, target_false_reject, int(scores.size))


# Labels other specialists give that decide a part on their own.
_TEXT_FAILS = {"text_missing": "no lot code printed", "text_mismatch": "lot code does not match the pattern"}
_TEXT_REVIEWS = {"text_unreadable": "lot code unreadable"}


def decide_findings(findings: Sequence[Finding], thresholds: Thresholds | None) -> Verdict:
    """The anomaly verdict, made stricter by text problems and by specialists that failed."""
    scores = [f.score for f in findings if f.kind is FindingKind.ANOMALY and f.score is not None]
    verdict = decide(max(scores) if scores else None, thresholds)
    reasons = [verdict.reason]
    decision = verdict.decision
    for f in findings:
        if f.label in _TEXT_FAILS:
            decision = Decision.FAIL
            reasons.append(f"{_TEXT_FAILS[f.label]} ({f.text!r})")
        elif f.label in _TEXT_REVIEWS or f.kind is FindingKind.ERROR:
            decision = Decision.FAIL if decision is Decision.FAIL else Decision.REVIEW
            reasons.append(_TEXT_REVIEWS.get(f.label or "", f"{f.specialist} failed: {f.text}"))
    return Verdict(decision, "; ".join(reasons))
