"""Confidence intervals and significance tests for accuracy figures.

- Rates (escape, false reject, recall) get Wilson score intervals: unlike the normal
  approximation they stay inside [0, 1] and behave at 0 or n events, which is exactly
  where a good line lives.
- AUROC gets DeLong's variance (Sun & Xu's fast midrank algorithm), and two models
  scored on the same items are compared with DeLong's paired test.
- A difference of two paired rates gets a paired bootstrap; because each item's
  difference is -1, 0 or +1, resampling items is the same as drawing the three counts
  from a multinomial, which costs O(resamples) instead of O(resamples × items).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import rankdata

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a two-sided confidence interval; NaN when nothing was measured."""

    value: float
    low: float
    high: float
    method: str

    def as_json(self) -> dict[str, float | str | None]:
        return {
            "value": finite_or_none(self.value),
            "low": finite_or_none(self.low),
            "high": finite_or_none(self.high),
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class Difference:
    """``a - b`` for two models on the same items, its interval and a two-sided p-value."""

    value: float
    low: float
    high: float
    p_value: float
    method: str

    @property
    def significant(self) -> bool:
        return bool(self.p_value < 1 - CONFIDENCE)

    def as_json(self) -> dict[str, float | str | bool | None]:
        return {
            "value": finite_or_none(self.value),
            "low": finite_or_none(self.low),
            "high": finite_or_none(self.high),
            "p_value": finite_or_none(self.p_value),
            "significant": self.significant,
            "method": self.method,
        }


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN: an unmeasured figure is written as null."""
    return float(x) if math.isfinite(x) else None


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(events: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of ``events / trials`` (NaN interval for zero trials)."""
    if not 0 <= events <= trials:
        raise ValueError(f"need 0 <= events ({events}) <= trials ({trials})")
    if trials == 0:
        return Interval(math.nan, math.nan, math.nan, "wilson")
    z2 = _z(confidence) ** 2
    p = events / trials
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = math.sqrt(p * (1 - p) / trials + z2 / (4 * trials**2)) * math.sqrt(z2) / (1 + z2 / trials)
    # Clamp only float noise: at 0 or n events the bound is exactly 0 or 1.
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), "wilson")


def _structural_components(
    scores: np.ndarray, is_positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROC per model and DeLong's placements: (aucs (k,), v_pos (k, m), v_neg (k, n)).

    ``scores`` is k×N (k models on the same N items).
    """
    pos, neg = scores[:, is_positive], scores[:, ~is_positive]
    m, n = pos.shape[1], neg.shape[1]
    rank_pos = rankdata(pos, axis=1)
    rank_neg = rankdata(neg, axis=1)
    rank_all = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v_pos = (rank_all[:, :m] - rank_pos) / n  # share of negatives each positive beats
    v_neg = 1.0 - (rank_all[:, m:] - rank_neg) / m  # share of positives that beat each negative
    return aucs, v_pos, v_neg


def _delong_covariance(scores: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    aucs, v_pos, v_neg = _structural_components(scores, is_positive)
    cov = np.atleast_2d(np.cov(v_pos)) / v_pos.shape[1] + np.atleast_2d(np.cov(v_neg)) / v_neg.shape[1]
    return aucs, cov


def _two_classes(is_positive: np.ndarray) -> bool:
    """DeLong needs at least two items of each class (a variance over one item is undefined)."""
    positives = int(is_positive.sum())
    return positives >= 2 and is_positive.size - positives >= 2


def auroc_interval(scores: np.ndarray, is_positive: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """AUROC with a DeLong interval, clipped to [0, 1]."""
    is_positive = np.asarray(is_positive, dtype=bool)
    if not _two_classes(is_positive):
        return Interval(math.nan, math.nan, math.nan, "delong")
    aucs, cov = _delong_covariance(np.asarray(scores, np.float64)[None, :], is_positive)
    half = _z(confidence) * math.sqrt(max(float(cov[0, 0]), 0.0))
    auc = float(aucs[0])
    return Interval(auc, max(0.0, auc - half), min(1.0, auc + half), "delong")


def delong_test(
    scores_a: np.ndarray, scores_b: np.ndarray, is_positive: np.ndarray, confidence: float = CONFIDENCE
) -> Difference:
    """AUROC(a) - AUROC(b) for two models scored on the same items, with DeLong's paired test."""
    is_positive = np.asarray(is_positive, dtype=bool)
    if not _two_classes(is_positive):
        return Difference(math.nan, math.nan, math.nan, math.nan, "delong")
    both = np.stack([np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)])
    aucs, cov = _delong_covariance(both, is_positive)
    diff = float(aucs[0] - aucs[1])
    sd = math.sqrt(max(float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), 0.0))
    if sd == 0.0:  # identical rankings: no evidence of any difference
        return Difference(diff, diff, diff, 1.0 if diff == 0 else 0.0, "delong")
    half = _z(confidence) * sd
    return Difference(diff, diff - half, diff + half, math.erfc(abs(diff) / sd / math.sqrt(2)), "delong")


def paired_bootstrap_rate_difference(
    events_a: np.ndarray,
    events_b: np.ndarray,
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Difference:
    """rate(a) - rate(b) where both flag events on the same items (e.g. escapes of two models)."""
    a, b = np.asarray(events_a, bool), np.asarray(events_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired events need the same items: {a.shape} vs {b.shape}")
    n = a.size
    if n == 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, "paired bootstrap")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    diff = (only_a - only_b) / n
    counts = np.random.default_rng(seed).multinomial(
        n, [only_a / n, only_b / n, 1 - (only_a + only_b) / n], size=resamples
    )
    diffs = (counts[:, 0] - counts[:, 1]) / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    # Two-sided percentile p-value: how often the resampled difference reaches the other side of 0.
    p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0)))) if only_a + only_b else 1.0
    return Difference(diff, float(low), float(high), float(p), "paired bootstrap")
