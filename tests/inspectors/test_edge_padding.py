"""Edge padding: patches at the frame's border are described from the frame, not from zeros."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from inspectors.anomaly import AnomalyInspector
from inspectors.training.backbones import load_backbone
from inspectors.training.fit_anomaly import fit_anomaly, request_from_simulation
from inspectors.training.patchcore import PatchCoreSettings, PatchFeatures
from pipeline.errors import ModelContractError
from pipeline.simulate import SimulationSettings, render_part
from tests.inspectors.tiny_backbones import save_onnx_extractor


@pytest.fixture(scope="module")
def lite0():  # type: ignore[no-untyped-def]
    return load_backbone("lite0")


def _features(backbone, image: torch.Tensor, padding: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return PatchFeatures(backbone, 3, padding).eval()(image)[0]


def test_padding_a_frame_with_a_plain_border_equals_seeing_it_on_a_larger_plain_canvas(lite0) -> None:  # type: ignore[no-untyped-def]
    image = torch.full((1, 3, 224, 224), 0.3)
    image[..., 100:108, 60:68] = 2.0  # one bright spot: its position must survive the crop
    padded = _features(lite0, image, 32)
    canvas = torch.full((1, 3, 288, 288), 0.3)
    canvas[..., 32:256, 32:256] = image
    larger = _features(load_backbone("lite0", image_size=288), canvas, 0)[:, 4:32, 4:32]
    assert padded.shape == larger.shape == (152, 28, 28)
    # the outermost ring differs only by where bilinear upsampling clamps
    torch.testing.assert_close(padded[:, 1:-1, 1:-1], larger[:, 1:-1, 1:-1], atol=1e-4, rtol=1e-4)


def test_padding_makes_border_patches_of_a_uniform_frame_look_like_its_centre(lite0) -> None:  # type: ignore[no-untyped-def]
    image = torch.full((1, 3, 224, 224), 0.3)

    def border_to_centre(f: torch.Tensor) -> float:
        centre = f[:, 12:16, 12:16].mean((1, 2), keepdim=True)
        return float((f[:, 0, :] - centre[:, 0]).norm(dim=0).mean())

    plain = border_to_centre(_features(lite0, image, 0))
    assert border_to_centre(_features(lite0, image, 32)) < 0.7 * plain


def test_padding_that_is_not_a_multiple_of_the_strides_is_refused(lite0) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelContractError, match=r"edge_padding=12: must be a non-negative multiple"):
        PatchFeatures(lite0, 3, 12)


def test_padding_an_onnx_extractor_is_refused(tmp_path: Path) -> None:
    backbone = load_backbone(f"onnx:{save_onnx_extractor(tmp_path / 'ext.onnx')}", layers=("f4", "f8"))
    with pytest.raises(ModelContractError, match="edge padding needs a torch backbone"):
        PatchFeatures(backbone, 3, 16)


def test_padded_model_exports_scores_and_records_its_padding(tmp_path: Path) -> None:
    sim = SimulationSettings(size=256, seed=5, defect_rate=0.5)
    settings = PatchCoreSettings(bank_size=512, edge_padding=32)
    request = request_from_simulation(sim, "padded", n_fit=16, n_calibration=16, settings=settings)
    model_dir, card = fit_anomaly(request, tmp_path)  # refused if ONNX and torch disagree
    recorded = json.loads((model_dir / "model.json").read_text())
    assert recorded["training"]["settings"]["edge_padding"] == 32
    parts = [render_part(sim, 500 + i) for i in range(40)]
    _, scores = AnomalyInspector(model_dir).score_images([p.image for p in parts])
    truth = np.array([p.defect is not None for p in parts])
    assert 5 < truth.sum() < 35
    assert roc_auc_score(truth, scores) >= 0.9
