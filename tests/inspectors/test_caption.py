"""Caption specialist: a tiny randomly initialised VisionEncoderDecoderModel, exported and served by
ONNX Runtime, must caption as transformers does; its words stay apart from the grounded findings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from inspectors.caption import CAPTION, CaptionInspector, greedy_tokens
from inspectors.model_card import DECODER_ONNX_FILE, TOKENIZER_FILE
from inspectors.preprocess import to_model_input
from pipeline.config import LineConfig
from pipeline.decide import decide_findings
from pipeline.errors import ModelContractError
from pipeline.images import encode_png
from pipeline.orchestrator import build_orchestrator
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import FindingKind, Frame, sha256_hex
from tests.inspectors.tiny_backbones import save_vit, tiny_vit_config

WORDS = [
    "a",
    "an",
    "the",
    "disc",
    "part",
    "metal",
    "crack",
    "scratch",
    "with",
    "on",
    "of",
    "and",
    "grey",
    "round",
    "label",
    "hole",
    "print",
    "near",
    "rim",
]


def _tiny_captioner(folder: Path) -> Path:
    """A VisionEncoderDecoderModel (ViT + GPT-2 with cross-attention) and a word-level tokenizer,
    saved as ``save_pretrained`` writes them. Wide position embeddings and cross-attention, and silent
    special tokens, make its greedy captions run their full length and differ from image to image."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
    )

    vocabulary = ["<pad>", "<s>", "</s>", "<unk>", *WORDS]
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocabulary)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=word_level, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(folder)
    encoder = tiny_vit_config(32)
    decoder = GPT2Config(
        vocab_size=len(vocabulary), n_positions=64, n_embd=32, n_layer=2, n_head=2, add_cross_attention=True,
        is_decoder=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
        model.decoder.transformer.wpe.weight.normal_(0.0, 3.0)
        for name, parameter in model.decoder.named_parameters():
            if "crossattention" in name and parameter.dim() > 1:
                parameter.normal_(0.0, 1.0)  # the image's say in each word
        model.decoder.transformer.wte.weight[:4] = 0.0  # pad, start, end, unknown: never the likeliest
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def captioner_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_captioner(tmp_path_factory.mktemp("hf-captioner"))


@pytest.fixture(scope="module")
def caption_model_dir(captioner_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspectors.training.caption import export_caption_model

    model_dir, card = export_caption_model(captioner_folder, "captions", tmp_path_factory.mktemp("models"))
    assert card.kind == CAPTION and card.parity["captions_compared"] == 4
    assert card.parity["first_step_logits_max_abs_diff"] < 1e-3
    return model_dir


def _frame(image: np.ndarray) -> Frame:
    data = encode_png(image)
    return Frame(image, "t", "cam1", datetime.now(UTC), sha256_hex(data), "test://", data)


def test_onnx_captions_are_the_ones_transformers_generates(
    captioner_folder: Path, caption_model_dir: Path
) -> None:
    from transformers import AutoTokenizer, VisionEncoderDecoderModel

    parts = [render_part(SimulationSettings(size=128, seed=9), i, defect="crack").image for i in range(3)]
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    images = [*parts, np.full((64, 64, 3), 30, np.uint8), noise]
    inspector = CaptionInspector(caption_model_dir, max_tokens=12)
    model = VisionEncoderDecoderModel.from_pretrained(str(captioner_folder), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(captioner_folder), local_files_only=True)
    pixels = torch.from_numpy(to_model_input(images, inspector.card.preprocessing))
    with torch.no_grad():
        generated = model.generate(pixels, max_new_tokens=12, do_sample=False, num_beams=1)
    expected = [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    captions = inspector.captions(images)
    assert captions == expected
    assert all(len(c.split()) == 12 and set(c.split()) <= set(WORDS) for c in captions)
    assert len(set(captions)) >= 3, captions  # the image matters, so a swapped input would show


def test_greedy_decoding_pads_a_caption_that_has_ended() -> None:
    steps = iter([[5, 2], [2, 7], [9, 9]])  # image 0 ends at its second token, image 1 at its first

    def next_logits(ids: np.ndarray, states: np.ndarray) -> np.ndarray:
        logits = np.zeros((2, 10), np.float32)
        logits[[0, 1], next(steps)] = 1.0
        return logits

    ids = greedy_tokens(next_logits, np.zeros((2, 4, 8), np.float32), start=1, end=2, pad=0, max_tokens=5)
    assert ids.tolist() == [[1, 5, 2], [1, 2, 0]]


def test_the_caption_is_a_finding_of_its_own_and_never_decides(
    caption_model_dir: Path, anomaly_model_dir: Path
) -> None:
    line = LineConfig.model_validate(
        {
            "line_id": "l",
            "name": "l",
            "schedule": {"interval_seconds": 60},
            "cameras": [{"camera_id": "cam1", "source": "sim://x"}],
            "specialists": {
                "anomaly": {"model": "m"},
                "describe": {},
                "caption": {"model": "captions", "max_tokens": 6},
            },
        }
    )
    assert line.model_names() == ["m", "captions"]
    orchestrator = build_orchestrator(line, {"m": anomaly_model_dir, "captions": caption_model_dir})
    frames = [
        _frame(render_part(SimulationSettings(size=256, seed=3), i, defect=None).image) for i in range(2)
    ]
    for result in orchestrator.inspect(frames):
        captions = [f for f in result.findings if f.label == CAPTION]
        assert len(captions) == 1 and captions[0].kind is FindingKind.DESCRIPTION and captions[0].text
        assert (
            captions[0].model_version == json.loads((caption_model_dir / "model.json").read_text())["version"]
        )
        grounded = [f for f in result.findings if f.specialist == "describe"]
        assert len(grounded) == 1 and captions[0].text not in (grounded[0].text or "")
        without = [f for f in result.findings if f.label != CAPTION]
        assert decide_findings(without, orchestrator.thresholds).decision is result.decision


def test_a_disabled_caption_is_never_loaded(anomaly_model_dir: Path) -> None:
    line = LineConfig.model_validate(
        {
            "line_id": "l",
            "name": "l",
            "schedule": {"interval_seconds": 60},
            "cameras": [{"camera_id": "cam1", "source": "sim://x"}],
            "specialists": {"anomaly": {"model": "m"}, "caption": {"enabled": False, "model": "nowhere"}},
        }
    )
    assert line.model_names() == ["m"]
    orchestrator = build_orchestrator(line, {"m": anomaly_model_dir})  # no folder for 'nowhere'
    assert [i.name for i in orchestrator.inspectors] == ["anomaly"]


def test_an_unusable_folder_is_a_clear_error(captioner_folder: Path, tmp_path: Path) -> None:
    from inspectors.training.caption import export_caption_model

    with pytest.raises(ModelContractError, match="Hugging Face model folder not found"):
        export_caption_model(tmp_path / "absent", "c", tmp_path / "models")
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (no_tokenizer / name).write_bytes((captioner_folder / name).read_bytes())
    with pytest.raises(ModelContractError, match=f"{TOKENIZER_FILE} is missing"):
        export_caption_model(no_tokenizer, "c", tmp_path / "models")
    vit = save_vit(tmp_path / "vit")
    (vit / TOKENIZER_FILE).write_bytes((captioner_folder / TOKENIZER_FILE).read_bytes())
    with pytest.raises(ModelContractError, match="a 'vit' model"):
        export_caption_model(vit, "c", tmp_path / "models")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("model.json"))


def test_the_inspector_refuses_other_models_and_replaced_files(
    caption_model_dir: Path, anomaly_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelContractError, match="not a captioning model"):
        CaptionInspector(anomaly_model_dir)
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for path in caption_model_dir.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    (tampered / DECODER_ONNX_FILE).write_bytes((tampered / DECODER_ONNX_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelContractError, match="decoder.onnx: sha256 differs"):
        CaptionInspector(tampered)


def test_import_caption_registers_the_model_and_a_bad_folder_is_one_line(
    captioner_folder: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    imported = runner.invoke(app, ["models", "import-caption", str(captioner_folder), "--name", "cap", *data])
    assert imported.exit_code == 0, imported.output
    assert "registered cap" in imported.output and "4 captions the same as transformers'" in imported.output
    shown = runner.invoke(app, ["models", "show", "cap", *data])
    assert shown.exit_code == 0 and '"kind": "caption"' in shown.output
    missing = runner.invoke(app, ["models", "import-caption", str(tmp_path / "nope"), "--name", "x", *data])
    assert missing.exit_code == 2 and "nope" in missing.output and "Traceback" not in missing.output
