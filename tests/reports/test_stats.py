"""Intervals and tests against hand-computed answers and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.reports.stats import (
    auroc_interval,
    delong_test,
    paired_bootstrap_rate_difference,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("events", "trials", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # upper bound = z²/(n+z²)
        (5, 10, 0.23659, 0.76341),
        (10, 10, 0.72247, 1.0),
        (1, 100, 0.00177, 0.05448),
    ],
)
def test_wilson_interval_known_answers(events: int, trials: int, low: float, high: float) -> None:
    interval = wilson_interval(events, trials)
    assert interval.value == pytest.approx(events / trials)
    assert interval.low == pytest.approx(low, abs=1e-5)
    assert interval.high == pytest.approx(high, abs=1e-5)


def test_wilson_interval_refuses_impossible_counts_and_is_nan_without_trials() -> None:
    with pytest.raises(ValueError, match="events"):
        wilson_interval(3, 2)
    assert math.isnan(wilson_interval(0, 0).value)


def _scores(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.4
    return rng.normal(size=n) + 1.2 * truth, truth


def test_auroc_interval_matches_sklearn_and_brute_force_delong_variance() -> None:
    scores, truth = _scores()
    interval = auroc_interval(scores, truth)
    assert interval.value == pytest.approx(roc_auc_score(truth, scores))
    # DeLong by definition: psi(x, y) = 1 if x > y, 0.5 if equal, over every (positive, negative) pair.
    pos, neg = scores[truth], scores[~truth]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    variance = psi.mean(axis=1).var(ddof=1) / pos.size + psi.mean(axis=0).var(ddof=1) / neg.size
    half = 1.959964 * math.sqrt(variance)
    assert interval.low == pytest.approx(interval.value - half, abs=1e-6)
    assert interval.high == pytest.approx(min(1.0, interval.value + half), abs=1e-6)


def test_auroc_interval_handles_ties_like_sklearn() -> None:
    scores = np.array([0.1, 0.4, 0.4, 0.4, 0.8, 0.8, 0.2, 0.9])
    truth = np.array([0, 0, 1, 0, 1, 0, 1, 1], bool)
    assert auroc_interval(scores, truth).value == pytest.approx(roc_auc_score(truth, scores))


def test_delong_test_difference_and_significance() -> None:
    scores, truth = _scores(seed=1, n=400)
    noisy = scores + np.random.default_rng(2).normal(scale=3.0, size=scores.size)
    better = delong_test(scores, noisy, truth)
    assert better.value == pytest.approx(roc_auc_score(truth, scores) - roc_auc_score(truth, noisy))
    assert better.significant and better.low > 0
    same = delong_test(scores, scores, truth)
    assert (same.value, same.p_value, same.significant) == (0.0, 1.0, False)


def test_paired_bootstrap_rate_difference() -> None:
    a = np.zeros(200, bool)
    a[:20] = True  # model a escapes 20 of 200, model b none
    b = np.zeros(200, bool)
    diff = paired_bootstrap_rate_difference(a, b, seed=3)
    assert diff.value == pytest.approx(0.1)
    assert diff.low > 0 and diff.significant
    assert diff == paired_bootstrap_rate_difference(a, b, seed=3)  # reproducible from the seed
    same = paired_bootstrap_rate_difference(a, a)
    assert (same.value, same.p_value, same.significant) == (0.0, 1.0, False)
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_rate_difference(a, b[:10])
