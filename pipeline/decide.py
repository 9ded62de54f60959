"""PASS / FAIL / REVIEW from a score and calibrated thresholds.

Scores between ``review`` and ``fail`` are the unsure band: a person decides.

Calibration (``calibrate_thresholds``) always sets ``fail`` from held-out good parts.
``review`` comes from good parts alone (the unsupervised default) or, when labelled
defective parts are given, from where those defects score, bounded by how many good
parts a person can afford to look at. What was used and what it achieved on the
calibration data travels with the thresholds as a ``Calibration`` record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.types import Decision, Finding, FindingKind

# Which rule set each threshold; written into model.json and the model registry.
FAIL_BY_FALSE_REJECT = "good images: (1 - target_false_reject) quantile"
REVIEW_BY_REVIEW_RATE = "good images: (1 - target_review_rate) quantile"
REVIEW_BY_ESCAPE = "defects: highest threshold with escape <= target_escape"
REVIEW_AT_FAIL = "fail threshold: the defects the escape target needs already fail"
REVIEW_BOUND_WINS = "good images: (1 - target_review_rate) quantile (escape target not met)"


@dataclass(frozen=True, slots=True)
class Calibration:
    """The data thresholds were calibrated on, the rules used, and what they achieved there.

    Counts on the calibration data: ``false_rejects`` good parts at or above ``fail``,
    ``good_reviews`` good parts in the review band, ``escapes`` defective parts below
    ``review`` (they would PASS). Rates and 95% Wilson intervals are derived from them.
    """

    n_good: int
    false_rejects: int
    good_reviews: int
    target_false_reject: float
    target_review_rate: float
    fail_rule: str
    review_rule: str
    n_defect: int = 0
    escapes: int = 0
    target_escape: float | None = None  # None: calibrated without defects

    @property
    def escape_target_met(self) -> bool | None:
        if self.target_escape is None or self.n_defect == 0:
            return None
        return self.escapes <= _allowed(self.target_escape, self.n_defect)

    def as_json(self) -> dict[str, Any]:
        # imported here: scipy is needed to write figures, not to decide on the line
        from pipeline.reports.stats import wilson_interval

        def rate(events: int, trials: int) -> dict[str, Any]:
            return {"events": events, "n": trials, **wilson_interval(events, trials).as_json()}

        return {
            "n_good": self.n_good,
            "n_defect": self.n_defect,
            "targets": {
                "false_reject": self.target_false_reject,
                "review_rate": self.target_review_rate,
                "escape": self.target_escape,
            },
            "false_reject": rate(self.false_rejects, self.n_good),
            "review_rate": rate(self.good_reviews, self.n_good),
            "escape": rate(self.escapes, self.n_defect) if self.n_defect else None,
            "escape_target_met": self.escape_target_met,
            "rules": {"fail": self.fail_rule, "review": self.review_rule},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        escape = data.get("escape") or {}
        return cls(
            n_good=int(data["n_good"]),
            false_rejects=int(data["false_reject"]["events"]),
            good_reviews=int(data["review_rate"]["events"]),
            target_false_reject=float(data["targets"]["false_reject"]),
            target_review_rate=float(data["targets"]["review_rate"]),
            fail_rule=str(data["rules"]["fail"]),
            review_rule=str(data["rules"]["review"]),
            n_defect=int(data.get("n_defect", 0)),
            escapes=int(escape.get("events", 0)),
            target_escape=data["targets"].get("escape"),
        )

    def describe(self) -> str:
        """One line for people: counts, achieved rates with 95% intervals, and the rules."""
        from pipeline.reports.stats import wilson_interval

        def rate(name: str, events: int, trials: int) -> str:
            i = wilson_interval(events, trials)
            return f"{name} {i.value:.1%} (95% CI {i.low:.1%}-{i.high:.1%})"

        parts = [
            f"calibrated on {self.n_good} good and {self.n_defect} defective images",
            rate("false reject", self.false_rejects, self.n_good),
            rate("good in review", self.good_reviews, self.n_good),
        ]
        if self.n_defect and self.target_escape is not None:
            met = "met" if self.escape_target_met else "NOT met"
            parts.append(
                f"{rate('escape', self.escapes, self.n_defect)}, target {self.target_escape:.1%} {met}"
            )
        return "; ".join(parts) + f". fail: {self.fail_rule}; review: {self.review_rule}"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score at or above ``fail`` fails; between ``review`` and ``fail`` goes to a person.

    ``calibration`` is None for thresholds set by hand (e.g. a line's override).
    """

    review: float
    fail: float
    target_false_reject: float = 0.01
    calibrated_on: int = 0
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        if not self.review <= self.fail:
            raise ValueError(f"review threshold {self.review} must not exceed fail threshold {self.fail}")

    def as_json(self) -> dict[str, Any]:
        return {
            "review": self.review,
            "fail": self.fail,
            "target_false_reject": self.target_false_reject,
            "calibrated_on": self.calibrated_on,
            "calibration": None if self.calibration is None else self.calibration.as_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Thresholds:
        """Reads ``as_json`` output, and the plain form of cards written before calibration records."""
        calibration = data.get("calibration")
        return cls(
            review=float(data["review"]),
            fail=float(data["fail"]),
            target_false_reject=float(data.get("target_false_reject", 0.01)),
            calibrated_on=int(data.get("calibrated_on", 0)),
            calibration=None if calibration is None else Calibration.from_json(calibration),
        )


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


def _allowed(target: float, n: int) -> int:
    """How many of ``n`` may miss a ``target`` share (the epsilon absorbs 0.29 * 100 = 28.999…)."""
    return min(n - 1, math.floor(target * n + 1e-9))


def _finite_scores(scores: np.ndarray | Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"calibration needs at least one {what} score")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} scores must be finite; got {int((~np.isfinite(array)).sum())} that are not")
    return array


def calibrate_thresholds(
    good_scores: np.ndarray | Sequence[float],
    defect_scores: np.ndarray | Sequence[float] | None = None,
    *,
    target_false_reject: float = 0.01,
    target_review_rate: float = 0.05,
    target_escape: float = 0.01,
) -> Thresholds:
    """Thresholds from held-out good parts' scores and, optionally, labelled defective parts' scores.

    ``fail`` is the (1 - target_false_reject) quantile of good scores: about that share of good
    parts fail. Quantiles round up (method "higher") so a small set errs towards fewer false rejects.

    ``review`` without defects is the (1 - target_review_rate) quantile of good scores: about that
    share of good parts do not pass automatically. That quantile is also the lowest ``review`` may go
    with defects: ``target_review_rate`` is the review budget. With defects, ``review`` comes down
    from ``fail`` only as far as needed for at most ``target_escape`` of the defects to score below
    it (they would PASS); when the budget does not reach that far, the budget wins and the record
    says the escape target was not met.
    """
    good = _finite_scores(good_scores, "good")
    if not 0 < target_false_reject <= target_review_rate < 1:
        raise ValueError(
            f"need 0 < target_false_reject ({target_false_reject}) <= target_review_rate "
            f"({target_review_rate}) < 1"
        )
    fail = float(np.quantile(good, 1 - target_false_reject, method="higher"))
    budget = float(np.quantile(good, 1 - target_review_rate, method="higher"))
    review, review_rule, defects = budget, REVIEW_BY_REVIEW_RATE, np.empty(0)
    if defect_scores is not None:
        if not 0 <= target_escape < 1:
            raise ValueError(f"need 0 <= target_escape ({target_escape}) < 1")
        defects = np.sort(_finite_scores(defect_scores, "defect"))
        # count(defects < d[k]) <= k, and any threshold above d[k] lets k + 1 or more escape
        by_escape = float(defects[_allowed(target_escape, defects.size)])
        if by_escape < budget:
            review, review_rule = budget, REVIEW_BOUND_WINS
        elif by_escape > fail:
            review, review_rule = fail, REVIEW_AT_FAIL
        else:
            review, review_rule = by_escape, REVIEW_BY_ESCAPE
    calibration = Calibration(
        n_good=int(good.size),
        false_rejects=int(np.sum(good >= fail)),
        good_reviews=int(np.sum((good >= review) & (good < fail))),
        target_false_reject=target_false_reject,
        target_review_rate=target_review_rate,
        fail_rule=FAIL_BY_FALSE_REJECT,
        review_rule=review_rule,
        n_defect=int(defects.size),
        escapes=int(np.sum(defects < review)),
        target_escape=None if defect_scores is None else target_escape,
    )
    return Thresholds(review, fail, target_false_reject, int(good.size), calibration)


# Labels other specialists give that decide a part on their own.
_TEXT_FAILS = {
    "text_missing": "no lot code printed",
    "text_mismatch": "lot code does not match the pattern",
    "text_poor_print": "lot code print faint or smeared",
}
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
