"""PASS / FAIL / REVIEW: exact behaviour at the thresholds, and thresholds that
reject about the share of good parts they were calibrated for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.decide import Thresholds, Verdict, calibrate_thresholds, decide
from pipeline.types import Decision

TH = Thresholds(review=0.4, fail=0.7)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, Decision.PASS),
        (0.399999, Decision.PASS),
        (0.4, Decision.REVIEW),  # exactly at review: a person looks
        (0.55, Decision.REVIEW),
        (0.699999, Decision.REVIEW),
        (0.7, Decision.FAIL),  # exactly at fail: fails
        (5.0, Decision.FAIL),
        (-1.0, Decision.PASS),
    ],
)
def test_decision_at_and_around_the_thresholds(score: float, expected: Decision) -> None:
    verdict = decide(score, TH)
    assert isinstance(verdict, Verdict)
    assert verdict.decision is expected


@pytest.mark.parametrize(
    ("score", "words"),
    [
        (0.123, ["0.123", "review threshold 0.400"]),
        (0.5, ["0.500", "review band", "0.400", "0.700"]),
        (0.9, ["0.900", "fail threshold 0.700"]),
    ],
)
def test_reason_mentions_the_score_and_the_threshold_it_was_compared_with(
    score: float, words: list[str]
) -> None:
    reason = decide(score, TH).reason
    for word in words:
        assert word in reason


def test_equal_thresholds_have_no_review_band() -> None:
    th = Thresholds(review=0.5, fail=0.5)
    assert decide(0.5, th).decision is Decision.FAIL
    assert decide(0.49, th).decision is Decision.PASS


@pytest.mark.parametrize(("score", "thresholds"), [(None, TH), (0.1, None), (None, None), (0.99, None)])
def test_missing_score_or_thresholds_goes_to_a_person(
    score: float | None, thresholds: Thresholds | None
) -> None:
    verdict = decide(score, thresholds)
    assert verdict.decision is Decision.REVIEW
    assert "no anomaly score" in verdict.reason


def test_nan_score_is_not_passed() -> None:
    assert decide(math.nan, TH).decision is Decision.REVIEW


def test_thresholds_refuse_review_above_fail() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        Thresholds(review=0.8, fail=0.7)
    with pytest.raises(ValueError):
        Thresholds(review=math.nan, fail=0.7)


# --- calibration ---------------------------------------------------------------------------------


def good_scores(n: int, seed: int = 0) -> np.ndarray:
    """Scores of good parts: gamma-shaped, like reconstruction errors (skewed, positive)."""
    return np.random.default_rng(seed).gamma(shape=2.0, scale=1.0, size=n)


def test_fail_threshold_rejects_about_the_target_share_of_the_calibration_set() -> None:
    scores = good_scores(1000)
    th = calibrate_thresholds(scores, target_false_reject=0.01, target_review_rate=0.05)
    failed = sum(decide(float(s), th).decision is Decision.FAIL for s in scores)
    # The thresholds are order statistics of these very (distinct) scores: quantile method
    # "higher" picks sorted index ceil(0.99 * 999) = 990 for fail and ceil(0.95 * 999) = 950 for
    # review, so exactly 10 of 1000 (1%) fail and 50 (5%) score at or above review.
    assert failed == 10
    assert int(np.sum(scores >= th.review)) == 50
    reviewed = sum(decide(float(s), th).decision is Decision.REVIEW for s in scores)
    assert reviewed == 40
    assert th.calibrated_on == 1000 and th.target_false_reject == 0.01


def test_fail_threshold_generalises_to_new_good_parts() -> None:
    th = calibrate_thresholds(good_scores(1000, seed=1), target_false_reject=0.01)
    fresh = good_scores(200_000, seed=2)
    rate = float(np.mean(fresh >= th.fail))
    # The true exceedance probability of the 991st of 1000 order statistics is Beta(10, 991)
    # distributed: mean 0.00999, sd 0.0031. 200k fresh samples add sd 0.0002. A tolerance of
    # 0.007 is over 2 sd: loose enough for any seed, tight enough to catch the review quantile
    # (5%) or the wrong tail (99%) being used.
    assert abs(rate - 0.01) < 0.007
    review_rate = float(np.mean(fresh >= th.review))
    assert abs(review_rate - 0.05) < 0.02  # Beta(50, 951): sd 0.0069, so ~3 sd


def test_review_is_never_above_fail() -> None:
    for seed in range(5):
        scores = good_scores(200, seed)
        for frr, rr in [(0.01, 0.05), (0.05, 0.05), (0.001, 0.5)]:
            th = calibrate_thresholds(scores, target_false_reject=frr, target_review_rate=rr)
            assert th.review <= th.fail
    th = calibrate_thresholds(scores, target_false_reject=0.05, target_review_rate=0.05)
    assert th.review == th.fail


def test_small_calibration_set_errs_towards_fewer_false_rejects() -> None:
    scores = np.arange(10, dtype=float)  # 0..9
    th = calibrate_thresholds(scores, target_false_reject=0.01, target_review_rate=0.05)
    # the 99% and 95% quantiles round up to the largest score: only it can fail
    assert th.fail == 9.0 and th.review == 9.0
    assert [decide(float(s), th).decision for s in scores].count(Decision.FAIL) == 1


def test_calibration_accepts_lists_and_ints() -> None:
    th = calibrate_thresholds([1, 2, 3, 4], target_false_reject=0.25, target_review_rate=0.5)
    assert isinstance(th.fail, float) and th.fail == 4.0 and th.review == 3.0
    assert th.calibrated_on == 4


@pytest.mark.parametrize(
    ("frr", "rr"),
    [
        (0.0, 0.05),  # zero false rejects cannot be a quantile target
        (-0.01, 0.05),
        (0.1, 0.05),  # fail more often than review: inverted band
        (0.01, 1.0),
        (0.01, 1.5),
        (1.0, 1.0),
    ],
)
def test_invalid_targets_raise(frr: float, rr: float) -> None:
    with pytest.raises(ValueError, match="target_false_reject"):
        calibrate_thresholds(good_scores(100), target_false_reject=frr, target_review_rate=rr)


def test_no_scores_raise() -> None:
    with pytest.raises(ValueError, match="at least one"):
        calibrate_thresholds(np.array([]))
