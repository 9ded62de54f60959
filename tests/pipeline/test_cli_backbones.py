"""``qcflow fit anomaly --backbone``: a user's ONNX extractor end to end, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from tests.inspectors.tiny_backbones import save_onnx_extractor

runner = CliRunner()


def _fit(mvtec_dir: Path, tmp_path: Path, *options: str) -> tuple[int, str]:
    args = ["fit", "anomaly", "--data", str(mvtec_dir), "--name", "byo", "--bank-size", "128"]
    result = runner.invoke(app, [*args, *options, "--data-dir", str(tmp_path / "data")])
    return result.exit_code, " ".join(result.output.split())  # undo the console's line wrapping


def test_fit_with_an_onnx_extractor_registers_an_onnx_only_model(mvtec_dir: Path, tmp_path: Path) -> None:
    extractor = save_onnx_extractor(tmp_path / "ext.onnx")
    code, output = _fit(mvtec_dir, tmp_path, "--backbone", f"onnx:{extractor}", "--layers", "f4,f8")
    assert code == 0, output
    assert "registered byo" in output and "(onnx-extractor)" in output
    shown = runner.invoke(app, ["models", "show", "byo", "--data-dir", str(tmp_path / "data")])
    assert '"kind": "onnx"' in shown.output  # the registry keeps the backbone with the training record
    card = json.loads(next((tmp_path / "data").rglob("model.json")).read_text())
    assert card["architecture"] == "patchcore-onnx-extractor"
    assert card["training"]["backbone"]["layers"] == ["f4", "f8"]
    assert card["training"]["settings"]["backbone"] == f"onnx:{extractor}"


@pytest.mark.parametrize(
    ("backbone", "message"),
    [
        ("lite9", "unknown EfficientNet-Lite variant 'lite9'; known: lite0, lite1, lite2"),
        ("resnet", "unknown backbone 'resnet'"),
        ("hf:{tmp}", "not a Hugging Face model folder: config.json is missing"),
        ("onnx:{tmp}/absent.onnx", "absent.onnx: ONNX feature extractor not found"),
    ],
)
def test_bad_backbone_is_a_clear_error(mvtec_dir: Path, tmp_path: Path, backbone: str, message: str) -> None:
    code, output = _fit(mvtec_dir, tmp_path, "--backbone", backbone.format(tmp=tmp_path))
    assert code == 2, output
    assert "ModelContractError" in output and message in output


def test_extractor_output_that_is_not_a_map_is_named(mvtec_dir: Path, tmp_path: Path) -> None:
    extractor = save_onnx_extractor(tmp_path / "ext.onnx")
    code, output = _fit(mvtec_dir, tmp_path, "--backbone", f"onnx:{extractor}", "--layers", "f4,pooled")
    assert code == 2 and "output 'pooled' has shape (1, 16); a feature map must be 4-D" in output


def test_fit_device_is_recorded_and_a_bad_one_is_a_clear_error(mvtec_dir: Path, tmp_path: Path) -> None:
    code, output = _fit(mvtec_dir, tmp_path, "--device", "tpu")
    assert code == 2 and "ConfigError: device 'tpu': not a torch device" in output
    assert not list((tmp_path / "data").rglob("model.json")), "nothing is written for a refused fit"
    code, output = _fit(mvtec_dir, tmp_path, "--device", "cpu")
    assert code == 0, output
    card = json.loads(next((tmp_path / "data").rglob("model.json")).read_text())
    assert card["training"]["settings"]["device"] == "cpu"


def test_fit_aspect_goes_into_the_model_card(mvtec_dir: Path, tmp_path: Path) -> None:
    code, output = _fit(mvtec_dir, tmp_path, "--aspect", "round")
    assert code == 2 and "--aspect" in output
    code, output = _fit(mvtec_dir, tmp_path, "--aspect", "pad")
    assert code == 0, output
    card = json.loads(next((tmp_path / "data").rglob("model.json")).read_text())
    assert card["preprocessing"]["aspect"] == "pad" and card["training"]["settings"]["aspect"] == "pad"


def test_fit_coarse_window_goes_into_the_model_card(mvtec_dir: Path, tmp_path: Path) -> None:
    code, output = _fit(mvtec_dir, tmp_path, "--coarse-window", "1.5")
    assert code == 2 and "--coarse-window" in output
    for option in (("--coarse-relative", "0.5"), ("--fine-score",)):
        code, output = _fit(mvtec_dir, tmp_path, *option)
        assert code != 0 and "coarse_window > 0" in str(output)
    code, output = _fit(
        mvtec_dir,
        tmp_path,
        *(
            "--coarse-window",
            "0.5",
            "--coarse-weight",
            "2",
            "--coarse-sigma",
            "16",
            "--coarse-relative",
            "0.5",
            "--fine-score",
        ),
    )
    assert code == 0, output
    card = json.loads(next((tmp_path / "data").rglob("model.json")).read_text())
    training = card["training"]
    assert training["coarse"]["in_score"] is False and card["map_scale"] > 0
    assert training["settings"]["coarse_window"] == 0.5 and training["settings"]["coarse_weight"] == 2.0
    assert training["coarse"]["window_cells"] >= 3 and training["coarse"]["weight"] > 0
    assert (training["coarse"]["sigma"], training["coarse"]["relative"]) == (16.0, 0.5)
