"""The coarse descriptor: patch descriptors averaged over a large window, scored against their own bank."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import CPU_ONNX_FILE, ONNX_FILE, ModelCard
from inspectors.preprocess import to_model_input
from inspectors.training.fit_anomaly import fit_anomaly, request_from_simulation
from inspectors.training.patchcore import (
    PatchCoreScorer,
    PatchCoreSettings,
    coarse_cells,
    coarse_descriptors,
    fit_patchcore,
    image_median,
    nearest_distances,
    smoothing_matrix,
)
from pipeline.errors import ConfigError
from pipeline.simulate import SimulationSettings, render_part

SIM = SimulationSettings(size=128, seed=21, defect_rate=0.5)
SETTINGS = PatchCoreSettings(bank_size=256, coarse_window=0.6, coarse_weight=1.0)


@pytest.mark.parametrize(
    ("window", "grid", "cells"),
    [(0.6, (30, 30), 19), (0.6, (28, 28), 17), (0.5, (28, 40), 15), (0.01, (28, 28), 3)],
)
def test_the_window_is_an_odd_number_of_cells_of_the_shorter_side(
    window: float, grid: tuple[int, int], cells: int
) -> None:
    assert coarse_cells(window, grid) == cells


def test_coarse_descriptors_average_the_window_around_each_patch() -> None:
    f = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(1, 2, 5, 5)
    pooled = coarse_descriptors(f, 3)
    assert pooled.shape == f.shape
    assert pooled[0, 0, 2, 2] == f[0, 0, 1:4, 1:4].mean()
    assert pooled[0, 1, 0, 0] == f[0, 1, 0:2, 0:2].mean()  # at the edge: the window's cells inside the map


def test_the_map_adds_the_weighted_coarse_distances_to_the_fine_ones() -> None:
    images = [render_part(SIM, i, defect=None).image for i in range(8)]
    scorer = fit_patchcore(images, SETTINGS)
    coarse = scorer.coarse
    assert coarse is not None and coarse.cells == coarse_cells(0.6, scorer.features.grid)
    assert len(coarse.bank) == SETTINGS.bank_size // 4 and coarse.weight > 0
    fine_only = PatchCoreScorer(scorer.features, scorer.bank, scorer.image_size, 4.0)
    part = render_part(SIM, 3, defect="crack").image
    with torch.no_grad():
        f = scorer.features(torch.from_numpy(to_model_input([part], scorer.preprocessing)))
        added = scorer.score_features(f)[0] - fine_only.score_features(f)[0]
        distances = nearest_distances(
            coarse_descriptors(f, coarse.cells), scorer.coarse_bank, scorer.coarse_bank_sq
        )
        expected = scorer.smooth_y @ (coarse.weight * distances) @ scorer.smooth_x.T
    torch.testing.assert_close(added, expected, rtol=1e-4, atol=1e-4)
    assert float(expected.max()) > 0


def test_a_relative_coarse_map_takes_a_share_of_each_images_median_off_with_its_own_smoothing() -> None:
    images = [render_part(SIM, i, defect=None).image for i in range(8)]
    plain = fit_patchcore(images, SETTINGS)
    relative = fit_patchcore(images, replace(SETTINGS, coarse_sigma=12.0, coarse_relative=0.5))
    assert relative.coarse is not None and plain.coarse is not None
    assert (relative.coarse.sigma, relative.coarse.relative) == (12.0, 0.5)
    torch.testing.assert_close(relative.coarse_bank, plain.coarse_bank)  # the same fit, scored otherwise
    parts = [render_part(SIM, 30 + i, defect="crack").image for i in range(2)]
    with torch.no_grad():
        f = plain.features(torch.from_numpy(to_model_input(parts, plain.preprocessing)))
        plain_coarse, relative_coarse = plain.coarse_scores(f), relative.coarse_scores(f)
        medians = torch.median(plain_coarse.flatten(1), dim=1).values.view(-1, 1, 1, 1)
        torch.testing.assert_close(relative_coarse, plain_coarse - 0.5 * medians)
        fine = relative.smooth_y @ nearest_distances(f, relative.bank, relative.bank_sq) @ relative.smooth_x.T
        wide = smoothing_matrix(f.shape[-2], relative.image_size, 12.0)
        expected = fine + wide @ relative_coarse @ wide.T
        torch.testing.assert_close(relative.score_features(f)[0], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(wide, relative.smooth_y)  # the coarse map's smoothing is its own


@pytest.mark.parametrize("shape", [(3, 1, 5, 5), (2, 1, 4, 6)])
def test_image_median_is_torchs_median_of_each_map(shape: tuple[int, ...]) -> None:
    m = torch.randn(shape)
    torch.testing.assert_close(image_median(m).flatten(), torch.median(m.flatten(1), dim=1).values)


def test_the_coarse_maps_shape_is_refused_without_a_coarse_descriptor() -> None:
    with pytest.raises(ConfigError, match="coarse_relative=0.5.*coarse_window > 0"):
        PatchCoreSettings(coarse_relative=0.5)


@pytest.mark.parametrize("relative", [0.0, 0.5])
def test_a_coarse_model_exports_both_searches_and_every_graph_scores_alike(
    tmp_path: Path, relative: float
) -> None:
    settings = replace(SETTINGS, coarse_sigma=8.0, coarse_relative=relative) if relative else SETTINGS
    request = request_from_simulation(SIM, "coarse", n_fit=8, n_calibration=8, settings=settings)
    model_dir, card = fit_anomaly(request, tmp_path)
    assert card.training["coarse"]["window_cells"] == coarse_cells(0.6, (28, 28))
    assert card.training["coarse"]["bank_size"] == 64
    assert card.training["settings"]["coarse_window"] == 0.6
    assert (card.training["coarse"]["sigma"], card.training["coarse"]["relative"]) == (
        (8.0, 0.5) if relative else (4.0, 0.0)
    )
    assert card.parity["max_rel_diff"] <= card.parity["tolerance"]
    assert card.parity["cpu_graph_max_rel_diff"] <= card.parity["tolerance"]
    cpu_graph = onnx.load(str(model_dir / CPU_ONNX_FILE))
    assert [n.op_type for n in cpu_graph.graph.node].count("DynamicQuantizeMatMul") == 2
    images = [render_part(SIM, 40 + i).image for i in range(4)]
    maps, scores = AnomalyInspector(model_dir).score_images(images)
    exact = ort.InferenceSession(str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    exact_map, exact_score = exact.run(
        None, {"image": to_model_input(images, ModelCard.load(model_dir).preprocessing)}
    )
    np.testing.assert_allclose(scores, exact_score, rtol=1e-4)
    np.testing.assert_allclose(maps, exact_map[:, 0], rtol=1e-4, atol=1e-4 * float(exact_score.max()))


def test_a_fine_score_is_the_fine_maps_maximum_while_the_map_keeps_the_coarse_one() -> None:
    images = [render_part(SIM, i, defect=None).image for i in range(8)]
    scorer = fit_patchcore(images, replace(SETTINGS, fine_score=True))
    assert scorer.coarse is not None and not scorer.coarse.in_score
    parts = [render_part(SIM, 50 + i, defect="pit").image for i in range(3)]
    with torch.no_grad():
        f = scorer.features(torch.from_numpy(to_model_input(parts, scorer.preprocessing)))
        m, score = scorer.score_features(f)
        fine = scorer.smooth_y @ nearest_distances(f, scorer.bank, scorer.bank_sq) @ scorer.smooth_x.T
    torch.testing.assert_close(score, fine.amax(dim=(1, 2, 3)))
    torch.testing.assert_close(
        m, fine + scorer.coarse_smooth_y @ scorer.coarse_scores(f) @ scorer.coarse_smooth_x.T
    )
    assert not torch.allclose(score, m.amax(dim=(1, 2, 3)))


def test_a_fine_scored_model_scales_its_map_onto_the_scores_thresholds(tmp_path: Path) -> None:
    settings = replace(SETTINGS, fine_score=True)
    request = request_from_simulation(SIM, "fine", n_fit=8, n_calibration=12, settings=settings)
    model_dir, card = fit_anomaly(request, tmp_path)
    assert card.map_scale is not None and card.map_scale > 0
    assert card.training["coarse"]["in_score"] is False and card.training["settings"]["fine_score"]
    assert ModelCard.load(model_dir).map_scale == card.map_scale
    inspector = AnomalyInspector(model_dir)
    calibration_maps, calibration_scores = inspector.score_images(request.calibration_images)
    # the good images' map maxima and scores share the quantile at the review budget (5 %)
    peaks = calibration_maps.reshape(len(calibration_maps), -1).max(axis=1)
    assert np.quantile(peaks, 0.95) == pytest.approx(np.quantile(calibration_scores, 0.95), rel=1e-4)
    images = [render_part(SIM, 60 + i, defect="crack").image for i in range(3)]
    maps, scores = inspector.score_images(images)
    exact = ort.InferenceSession(str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    exact_map, exact_score = exact.run(None, {"image": to_model_input(images, card.preprocessing)})
    np.testing.assert_allclose(scores, exact_score, rtol=1e-4)  # the graph's fine score
    np.testing.assert_allclose(maps, exact_map[:, 0] * card.map_scale, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"fine_score": True}, "coarse_window > 0"),
        ({"coarse_window": 0.6, "fine_score": True, "aspect": "pad"}, "stretch only"),
    ],
)
def test_a_fine_score_needs_a_coarse_map_and_a_stretched_input(
    options: dict[str, object], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        PatchCoreSettings(**options)  # type: ignore[arg-type]
