"""Threshold calibration with labelled defects: the review threshold follows the defects within
the good parts' review budget, and the record says what was used and what it achieved."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.decide import (
    FAIL_BY_FALSE_REJECT,
    REVIEW_AT_FAIL,
    REVIEW_BOUND_WINS,
    REVIEW_BY_ESCAPE,
    REVIEW_BY_REVIEW_RATE,
    Calibration,
    Thresholds,
    calibrate_thresholds,
    decide,
)
from pipeline.reports.stats import wilson_interval
from pipeline.types import Decision


def good_scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(shape=2.0, scale=1.0, size=n)


def share(decision: Decision, scores: np.ndarray, th: Thresholds) -> float:
    return sum(decide(float(s), th).decision is decision for s in scores) / len(scores)


def test_separated_defects_pull_review_down_from_fail_just_far_enough_to_catch_them() -> None:
    good = good_scores(1000)
    budget, fail = np.quantile(good, [0.95, 0.99], method="higher")
    # 100 defects from just under fail to far above it: some would pass at review == fail
    defects = np.linspace(budget + 0.6 * (fail - budget), fail + 5, 100)
    th = calibrate_thresholds(good, defects, target_escape=0.01)
    assert th.fail == fail  # the fail threshold never depends on defects
    assert budget <= th.review < fail
    assert share(Decision.PASS, defects, th) <= 0.01  # escape on the calibration defects
    assert share(Decision.REVIEW, good, th) <= 0.05  # within the review budget
    cal = th.calibration
    assert cal is not None
    assert (cal.review_rule, cal.fail_rule) == (REVIEW_BY_ESCAPE, FAIL_BY_FALSE_REJECT)
    assert cal.escape_target_met is True
    assert (cal.n_good, cal.n_defect, cal.escapes) == (1000, 100, 1)  # 1% of 100 may escape
    assert cal.false_rejects == int(np.sum(good >= fail))
    # the highest threshold that meets the target: any higher and two would escape
    assert th.review == np.sort(defects)[1]


def test_zero_escape_target_catches_every_calibration_defect() -> None:
    good = good_scores(500, seed=3)
    defects = np.quantile(good, 0.97) + np.arange(20) * 0.1
    th = calibrate_thresholds(good, defects, target_escape=0.0)
    assert th.review == defects.min() and th.calibration is not None and th.calibration.escapes == 0


def test_defects_that_all_fail_need_no_review_band() -> None:
    good = good_scores(400, seed=1)
    defects = good.max() + 1 + np.arange(10.0)
    th = calibrate_thresholds(good, defects)
    assert th.review == th.fail
    assert th.calibration is not None and th.calibration.review_rule == REVIEW_AT_FAIL
    assert th.calibration.escape_target_met is True and th.calibration.good_reviews == 0


def test_overlapping_defects_keep_the_review_budget_and_record_the_missed_escape_target() -> None:
    good = good_scores(1000, seed=4)
    defects = good_scores(200, seed=5) + 1.0  # most defects score like good parts
    unsupervised = calibrate_thresholds(good)
    th = calibrate_thresholds(good, defects, target_escape=0.01, target_review_rate=0.05)
    assert (th.review, th.fail) == (unsupervised.review, unsupervised.fail)
    cal = th.calibration
    assert cal is not None and cal.review_rule == REVIEW_BOUND_WINS
    assert cal.escape_target_met is False
    assert cal.escapes == int(np.sum(defects < th.review)) and cal.escapes / cal.n_defect > 0.01
    record = cal.as_json()
    assert record["escape_target_met"] is False
    expected = wilson_interval(cal.escapes, 200)
    assert record["escape"]["events"] == cal.escapes and record["escape"]["n"] == 200
    assert record["escape"]["low"] == pytest.approx(expected.low)
    assert record["escape"]["high"] == pytest.approx(expected.high)
    assert record["escape"]["method"] == "wilson"
    assert "NOT met" in cal.describe() and REVIEW_BOUND_WINS in cal.describe()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("frr", "rr"), [(0.01, 0.05), (0.02, 0.1), (0.05, 0.05)])
def test_without_defects_the_thresholds_are_the_good_image_quantiles(
    seed: int, frr: float, rr: float
) -> None:
    good = good_scores(137 + seed * 50, seed)
    th = calibrate_thresholds(good, target_false_reject=frr, target_review_rate=rr)
    # the rule as it stood before defects could be given
    assert th.fail == float(np.quantile(good, 1 - frr, method="higher"))
    assert th.review == float(np.quantile(good, 1 - rr, method="higher"))
    assert (th.target_false_reject, th.calibrated_on) == (frr, good.size)
    cal = th.calibration
    assert cal is not None
    assert (cal.n_defect, cal.escapes, cal.target_escape, cal.escape_target_met) == (0, 0, None, None)
    assert cal.review_rule == REVIEW_BY_REVIEW_RATE
    assert cal.as_json()["escape"] is None


def test_record_counts_rates_and_intervals_on_the_calibration_data() -> None:
    good = np.arange(100, dtype=float)  # 0..99
    th = calibrate_thresholds(good, [97.5, 98.5, 120.0], target_false_reject=0.02, target_review_rate=0.05)
    assert (th.review, th.fail) == (97.5, 98.0)
    record = th.calibration.as_json() if th.calibration else {}
    assert record["false_reject"]["events"] == 2 and record["false_reject"]["value"] == 0.02
    assert record["review_rate"]["events"] == 0  # 97.5 <= good < 98: none
    assert record["escape"]["events"] == 0 and record["escape_target_met"] is True
    low, high = record["false_reject"]["low"], record["false_reject"]["high"]
    assert 0 < low < 0.02 < high < 0.1
    assert record["targets"] == {"false_reject": 0.02, "review_rate": 0.05, "escape": 0.01}
    assert record["rules"] == {"fail": FAIL_BY_FALSE_REJECT, "review": REVIEW_BY_ESCAPE}


def test_thresholds_round_trip_through_json_and_old_cards_still_load() -> None:
    th = calibrate_thresholds(good_scores(300), good_scores(40, seed=9) + 3)
    assert Thresholds.from_json(th.as_json()) == th
    old = Thresholds.from_json({"review": 0.4, "fail": 0.7, "target_false_reject": 0.01, "calibrated_on": 50})
    assert old == Thresholds(0.4, 0.7, 0.01, 50) and old.calibration is None
    assert Calibration.from_json(th.as_json()["calibration"]) == th.calibration


@pytest.mark.parametrize(
    ("defects", "kwargs", "match"),
    [
        ([], {}, "at least one defect"),
        ([1.0, math.nan], {}, "defect scores must be finite"),
        ([1.0, math.inf], {}, "defect scores must be finite"),
        ([1.0], {"target_escape": 1.0}, "target_escape"),
        ([1.0], {"target_escape": -0.1}, "target_escape"),
    ],
)
def test_bad_defect_input_is_refused(defects: list[float], kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        calibrate_thresholds(good_scores(50), defects, **kwargs)


def test_non_finite_good_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="good scores must be finite"):
        calibrate_thresholds([1.0, 2.0, math.nan])
