"""Export a local Hugging Face image-captioning model to the caption specialist's ONNX pair.

The folder holds a ``VisionEncoderDecoderModel`` (a ViT-, DeiT- or Swin-style encoder and a GPT-2-
style decoder with cross-attention, as ``save_pretrained`` writes it) and its fast tokenizer
(``tokenizer.json``); nothing is ever downloaded. ``model.onnx`` is the encoder (``pixel_values`` ->
``encoder_hidden_states``), ``decoder.onnx`` the decoder without a cache (``input_ids``,
``encoder_hidden_states`` -> ``logits``). Before the model is registered, the deployed inspector's
greedy captions of sample images must be token for token the ones ``transformers`` generates.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspectors.caption import CAPTION, CaptionInspector
from inspectors.model_card import DECODER_ONNX_FILE, ONNX_FILE, TOKENIZER_FILE, ModelCard
from inspectors.preprocess import Preprocessing, to_model_input
from inspectors.training.backbones import hf_normalisation, hf_weight_files
from pipeline.datasets import digest_files
from pipeline.decide import Thresholds
from pipeline.errors import ModelContractError
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import sha256_hex
from pipeline.versions import version_folder

log = logging.getLogger(__name__)

_OPSET = 17
_PARITY_IMAGES = 4  # simulated parts captioned by both transformers and ONNX Runtime
_PARITY_TOKENS = 20


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(pixel_values=pixel_values).last_hidden_state  # type: ignore[operator]


class _Decoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        # an explicit mask keeps the exporter off transformers' packed-sequence check (aten::diff)
        return self.model.decoder(  # type: ignore[operator]
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            encoder_hidden_states=encoder_hidden_states,
            use_cache=False,
        ).logits


def _load(folder: Path) -> tuple[Any, Any]:
    files = hf_weight_files(folder)
    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelContractError(f"{folder}: {TOKENIZER_FILE} is missing (a fast tokenizer is needed)")
    from transformers import AutoConfig, AutoTokenizer, VisionEncoderDecoderModel

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises many types for an unusable folder
        raise ModelContractError(f"{folder}: transformers cannot read config.json: {exc}") from exc
    if config.model_type != "vision-encoder-decoder":
        raise ModelContractError(
            f"{folder}: a {config.model_type!r} model; the caption specialist takes a "
            "'vision-encoder-decoder' model (VisionEncoderDecoderModel)"
        )
    try:
        model = VisionEncoderDecoderModel.from_pretrained(
            str(folder), local_files_only=True, attn_implementation="eager"
        ).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelContractError(f"{folder}: transformers cannot load the model: {exc}") from exc
    log.info("caption model %s: %s", folder, ", ".join(p.name for p in files))
    return model, tokenizer


def _token_ids(model: Any) -> dict[str, int]:
    config, generation = model.config, model.generation_config
    start = config.decoder_start_token_id or generation.decoder_start_token_id or config.decoder.bos_token_id
    end = generation.eos_token_id if generation.eos_token_id is not None else config.decoder.eos_token_id
    if isinstance(end, list):
        end = end[0]
    pad = config.pad_token_id if config.pad_token_id is not None else end
    if start is None or end is None:
        raise ModelContractError("the caption model's config names no decoder start or end-of-text token")
    return {"start_token_id": int(start), "end_token_id": int(end), "pad_token_id": int(pad)}


def _export(model: Any, image_size: int, model_dir: Path) -> None:
    pixels = torch.zeros(1, 3, image_size, image_size)
    encoder, decoder = _Encoder(model).eval(), _Decoder(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks; parity is checked afterwards
        states = encoder(pixels)
        torch.onnx.export(
            encoder,
            (pixels,),
            str(model_dir / ONNX_FILE),
            input_names=["pixel_values"],
            output_names=["encoder_hidden_states"],
            dynamic_axes={"pixel_values": {0: "batch"}, "encoder_hidden_states": {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            decoder,
            (torch.zeros(1, 3, dtype=torch.long), states),
            str(model_dir / DECODER_ONNX_FILE),
            input_names=["input_ids", "encoder_hidden_states"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "encoder_hidden_states": {0: "batch"},
                "logits": {0: "batch", 1: "tokens"},
            },
            opset_version=_OPSET,
            dynamo=False,
        )


def _parity(model: Any, model_dir: Path, prep: Preprocessing, ids: dict[str, int]) -> dict[str, float]:
    """Greedy captions of simulated parts by transformers and by the deployed inspector must be the
    same tokens; the largest difference of the first step's logits is recorded."""
    images = [
        render_part(SimulationSettings(size=256, seed=5), i, defect=None).image for i in range(_PARITY_IMAGES)
    ]
    inspector = CaptionInspector(model_dir, max_tokens=_PARITY_TOKENS, threads=1)
    states = inspector.encode(images)
    onnx_ids = inspector.decode(states)
    pixels = torch.from_numpy(to_model_input(images, prep))
    with torch.no_grad():
        generated = model.generate(
            pixels,
            max_new_tokens=_PARITY_TOKENS,
            do_sample=False,
            num_beams=1,
            decoder_start_token_id=ids["start_token_id"],
            eos_token_id=ids["end_token_id"],
            pad_token_id=ids["pad_token_id"],
        ).numpy()
        start = torch.full((len(images), 1), ids["start_token_id"], dtype=torch.long)
        reference = _Decoder(model)(start, _Encoder(model)(pixels)).numpy()[:, -1]
    width = max(generated.shape[1], onnx_ids.shape[1])

    def padded(a: np.ndarray) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=ids["pad_token_id"])

    if not np.array_equal(padded(generated), padded(onnx_ids)):
        raise ModelContractError(
            f"{model_dir}: ONNX Runtime's captions differ from transformers' "
            f"({onnx_ids.tolist()} against {generated.tolist()}): not registered"
        )
    first = inspector._next_logits(start.numpy(), states)
    return {
        "first_step_logits_max_abs_diff": float(np.abs(first - reference).max()),
        "captions_compared": float(len(images)),
        "tokens_compared": float(generated.shape[1]),
    }


def export_caption_model(folder: Path, name: str, models_root: Path) -> tuple[Path, ModelCard]:
    """Export the captioning model in ``folder``, check it against transformers, write ``model.json``."""
    folder = Path(folder)
    started = time.perf_counter()
    model, tokenizer = _load(folder)
    image_size = model.config.encoder.image_size
    image_size = image_size[0] if isinstance(image_size, list | tuple) else int(image_size)
    mean, std = hf_normalisation(folder)
    prep = Preprocessing((image_size, image_size), mean, std)
    ids = _token_ids(model)
    weights_digest = digest_files(hf_weight_files(folder))
    with version_folder(models_root, name, weights_digest) as new:
        model_dir = new.folder
        _export(model, image_size, model_dir)
        shutil.copyfile(folder / TOKENIZER_FILE, model_dir / TOKENIZER_FILE)
        card = ModelCard(
            name=name,
            version=new.version,
            kind=CAPTION,
            architecture=f"{model.config.encoder.model_type}+{model.config.decoder.model_type}",
            inputs={"pixel_values": {"shape": [None, 3, image_size, image_size], "dtype": "float32"}},
            outputs=["encoder_hidden_states"],
            preprocessing=prep,
            thresholds=Thresholds(0.0, 0.0),
            onnx_sha256=sha256_hex((model_dir / ONNX_FILE).read_bytes()),
            decoder_onnx_sha256=sha256_hex((model_dir / DECODER_ONNX_FILE).read_bytes()),
            training={
                "source": str(folder.resolve()),
                "data_digest": weights_digest,
                "text": {
                    **ids,
                    "tokenizer_sha256": sha256_hex((folder / TOKENIZER_FILE).read_bytes()),
                    "vocabulary": len(tokenizer),
                },
            },
        )
        card.save(model_dir)
        parity = _parity(model, model_dir, prep, ids)
        card = replace(card, parity=parity)
        card.save(model_dir)
    log.info("caption model %s %s exported in %.1f s", name, new.version, time.perf_counter() - started)
    return new.final, card
