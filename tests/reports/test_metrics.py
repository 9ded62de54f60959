"""Report metrics against scikit-learn on fixed inputs and hand-computed small cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.decide import Thresholds
from pipeline.metrics import auroc_by_counting
from pipeline.reports.metrics import group_metrics, pro_score

THRESHOLDS = Thresholds(review=0.4, fail=0.8)


def test_group_metrics_hand_case() -> None:
    #                   good: PASS REVIEW FAIL PASS | defect: PASS REVIEW FAIL FAIL
    scores = np.array([0.1, 0.5, 0.9, 0.2, 0.3, 0.6, 0.85, 0.95])
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    classes = np.array(["", "", "", "", "crack", "crack", "pit", "crack"], object)
    m = group_metrics(scores, truth, classes, THRESHOLDS)
    assert m.confusion == {
        "good": {"PASS": 2, "REVIEW": 1, "FAIL": 1},
        "defect": {"PASS": 1, "REVIEW": 1, "FAIL": 2},
    }
    assert m.escape_rate.value == pytest.approx(1 / 4)
    assert m.false_reject_rate.value == pytest.approx(1 / 4)
    assert m.review_rate.value == pytest.approx(2 / 8)
    assert m.image_auroc.value == pytest.approx(roc_auc_score(truth, scores))
    assert m.image_ap == pytest.approx(average_precision_score(truth, scores))
    recall = {c.defect_class: (c.caught, c.total) for c in m.recall_by_class}
    assert recall == {"crack": (2, 3), "pit": (1, 1)}
    assert m.flat()["min_class_recall"] == pytest.approx(2 / 3)
    assert m.pixel_auroc is None and m.pro is None


def test_group_metrics_match_sklearn_on_fixed_random_scores() -> None:
    rng = np.random.default_rng(11)
    truth = rng.random(500) < 0.3
    scores = rng.normal(size=500) + truth
    m = group_metrics(scores, truth, np.where(truth, "x", ""), THRESHOLDS)
    assert m.image_auroc.value == pytest.approx(roc_auc_score(truth, scores))
    assert m.image_ap == pytest.approx(average_precision_score(truth, scores))
    assert m.image_auroc.low < m.image_auroc.value < m.image_auroc.high


def _pixel_case(region_scores: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """One 40×25 map: 998 defect-free pixels spread over [0.2, 0.8], a 2-pixel defect region."""
    maps = np.linspace(0.2, 0.8, 1000).reshape(1, 40, 25)
    masks = np.zeros_like(maps, bool)
    masks[0, 0, :2] = True
    maps[0, 0, :2] = region_scores
    return maps, masks


@pytest.mark.parametrize(
    ("region_scores", "expected"),
    [
        ((0.9, 0.95), 1.0),  # the region is above every good pixel: overlap 1 at any FPR > 0
        ((0.05, 0.1), 0.0),  # below every good pixel: no overlap until FPR = 1
        ((0.9, 0.1), 0.5),  # one pixel above, one below: overlap 0.5 up to FPR 0.3
    ],
)
def test_pro_score_hand_cases(region_scores: tuple[float, float], expected: float) -> None:
    maps, masks = _pixel_case(region_scores)
    assert pro_score(maps, masks) == pytest.approx(expected, abs=1e-9)


def test_pixel_metrics_skip_defects_without_masks() -> None:
    maps, masks = _pixel_case((0.9, 0.95))
    # A second, defective item with no mask but a high map: counted as defect-free it would lower PRO.
    maps = np.concatenate([maps, np.full_like(maps, 0.99)])
    masks = np.concatenate([masks, np.zeros_like(masks)])
    m = group_metrics(
        np.array([0.9, 0.99]), np.array([True, True]), np.array(["a", "b"], object), THRESHOLDS, maps, masks
    )
    assert m.pro == pytest.approx(1.0)
    assert m.pixel_auroc == pytest.approx(1.0)


@pytest.mark.parametrize("positive_share", [0.02, 0.5, 0.95])
def test_pixel_auroc_by_counting_matches_sklearn_with_ties(positive_share: float) -> None:
    rng = np.random.default_rng(5)
    scores = rng.random(20_000).round(2)  # many ties
    truth = rng.random(20_000) < positive_share
    assert auroc_by_counting(scores, truth) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
