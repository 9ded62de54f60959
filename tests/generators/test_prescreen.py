"""The pre-screen measures and flags; it ranks good candidates above bad ones and decides nothing."""

from __future__ import annotations

import numpy as np

from generators.prescreen import AnomalyView, prescreen, realism_score

STATS = {"mean": 60.0, "mean_spread": 10.0, "contrast": 5.0, "contrast_spread": 3.0}


def _base() -> tuple[np.ndarray, np.ndarray]:
    base = np.full((40, 40, 3), 150, np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[10:20, 10:20] = True
    return base, mask


def _heat(y: int, x: int) -> np.ndarray:
    heat = np.zeros((20, 20), np.float32)
    heat[y // 2, x // 2] = 1.0
    return heat


def test_a_dark_defect_inside_its_mask_passes_cleanly() -> None:
    base, mask = _base()
    generated = base.copy()
    generated[mask] = 60
    result = prescreen(base, generated, mask, STATS, AnomalyView(_heat(15, 15), 0.9, 0.5))
    assert result.changed_inside_mask == 1.0 and result.mask_coverage == 1.0
    assert result.realism > 0.5 and result.anomaly_peak_in_mask is True
    assert result.flags == () and result.priority > 0.8


def test_defects_outside_the_mask_unrealistic_or_unseen_are_flagged_and_ranked_lower() -> None:
    base, mask = _base()
    good = base.copy()
    good[mask] = 60
    outside = good.copy()
    outside[30:38, 30:38] = 60
    faint = base.copy()
    faint[mask] = 146
    clean = prescreen(base, good, mask, STATS, AnomalyView(_heat(15, 15), 0.9, 0.5))
    spilled = prescreen(base, outside, mask, STATS, AnomalyView(_heat(34, 34), 0.9, 0.5))
    unseen = prescreen(base, faint, mask, STATS, AnomalyView(_heat(15, 15), 0.1, 0.5))
    assert "changes outside the mask" in spilled.flags
    assert "anomaly specialist finds the defect outside the mask" in spilled.flags
    assert {
        "mask barely changed",
        "unlike real defects of this class",
        "anomaly specialist sees no defect",
    } <= set(unseen.flags)
    assert clean.priority > spilled.priority and clean.priority > unseen.priority
    assert spilled.as_dict()["flags"] == list(spilled.flags)


def test_realism_peaks_at_the_real_statistics() -> None:
    at_real = realism_score(np.array([55.0, 65.0, 60.0, 60.0]), STATS)
    too_bright = realism_score(np.array([195.0, 205.0, 200.0, 200.0]), STATS)
    assert at_real > 0.9 and too_bright < 0.6 and realism_score(np.array([60.0]), None) == 0.0
