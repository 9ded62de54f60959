"""The anomaly map's Gaussian smoothing (``blur_sigma``), a fit setting recorded with the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inspectors.training.backbones import load_backbone
from inspectors.training.fit_anomaly import fit_anomaly, request_from_simulation
from inspectors.training.patchcore import (
    PatchCoreScorer,
    PatchCoreSettings,
    PatchFeatures,
    _gaussian_kernel,
    smoothing_matrix,
)
from pipeline.simulate import SimulationSettings


def _spot_maps(sigma: float) -> torch.Tensor:
    """The map of one bright spot on a plain frame, against a bank of that plain frame's patches."""
    torch.manual_seed(0)
    features = PatchFeatures(load_backbone("lite0"), 3).eval()
    plain = torch.full((1, 3, 224, 224), 0.3)
    with torch.no_grad():
        bank = features(plain)[0].flatten(1).T.contiguous()
        scorer = PatchCoreScorer(features, bank, 224, sigma).eval()
        spot = plain.clone()
        spot[..., 108:116, 108:116] = 2.0
        anomaly_map, _ = scorer(spot)
    return anomaly_map[0, 0]


def test_a_wider_blur_spreads_the_same_evidence_over_a_larger_area() -> None:
    sharp, wide = _spot_maps(4.0), _spot_maps(16.0)

    def area_above_half_peak(m: torch.Tensor) -> int:
        return int((m >= m.max() / 2).sum())

    assert wide.max() < sharp.max()
    assert area_above_half_peak(wide) > 2 * area_above_half_peak(sharp)
    (y0, x0), (y1, x1) = divmod(int(sharp.argmax()), 224), divmod(int(wide.argmax()), 224)
    assert abs(y1 - y0) <= 8 and abs(x1 - x0) <= 8, "smoothing moved the peak"
    assert abs(y0 - 112) <= 12 and abs(x0 - 112) <= 12, "the peak is not on the spot"


def test_the_fitted_model_records_its_blur(tmp_path: Path) -> None:
    sigma = 12.0
    sim = SimulationSettings(size=256, seed=5)
    settings = PatchCoreSettings(bank_size=256, blur_sigma=sigma)
    request = request_from_simulation(sim, "smooth", n_fit=8, n_calibration=8, settings=settings)
    model_dir, _ = fit_anomaly(request, tmp_path)  # exported with the parity check
    recorded = json.loads((model_dir / "model.json").read_text())
    assert recorded["training"]["settings"]["blur_sigma"] == sigma


@pytest.mark.parametrize(
    ("rows", "columns", "size", "sigma"), [(28, 28, 224, 4.0), (30, 17, 240, 12.0), (3, 5, 64, 30.0)]
)
def test_the_smoothing_matrices_are_bilinear_upsampling_then_an_edge_replicating_gaussian(
    rows: int, columns: int, size: int, sigma: float
) -> None:
    torch.manual_seed(1)
    patch_map = torch.rand(2, 1, rows, columns) * 30
    kernel = _gaussian_kernel(sigma)
    pad = kernel.numel() // 2
    expected = F.interpolate(patch_map, size=(size, size), mode="bilinear", align_corners=False)
    expected = F.pad(expected, (pad, pad, pad, pad), mode="replicate")
    expected = F.conv2d(F.conv2d(expected, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    y, x = smoothing_matrix(rows, size, sigma), smoothing_matrix(columns, size, sigma)
    assert y.shape == (size, rows) and x.shape == (size, columns)
    torch.testing.assert_close(y @ patch_map @ x.T, expected, rtol=1e-5, atol=1e-4)
