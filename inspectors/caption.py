"""Caption specialist (off by default): a sentence from a local image-captioning model, in ONNX Runtime.

The model is a Hugging Face ``VisionEncoderDecoderModel`` folder the user has on disk, exported by
``qcflow models import-caption`` (``inspectors/training/caption.py``): ``model.onnx`` encodes the
image once, ``decoder.onnx`` gives the next token's logits, and the caption is decoded greedily.
Unlike the grounded description (``describe``), a caption is the model's own words and may name
what no specialist measured: it is kept as a finding of its own, labelled ``caption``, shown as
such, and no decision ever reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from inspectors.model_card import DECODER_ONNX_FILE, TOKENIZER_FILE
from inspectors.onnx_session import open_model, open_second_graph, read_checked
from inspectors.preprocess import to_model_input
from pipeline.errors import ModelContractError
from pipeline.types import Finding, FindingKind, Frame

CAPTION = "caption"

NextLogits = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (token ids N×T, encoder states) -> N×V


def greedy_tokens(
    next_logits: NextLogits, states: np.ndarray, start: int, end: int, pad: int, max_tokens: int
) -> np.ndarray:
    """Each image's most likely caption, one token at a time: N×(1 + at most ``max_tokens``) ids that
    begin with ``start``; a caption that has ended is padded with ``pad``."""
    ids = np.full((states.shape[0], 1), start, np.int64)
    ended = np.zeros(states.shape[0], bool)
    for _ in range(max_tokens):
        token = np.where(ended, pad, next_logits(ids, states).argmax(axis=-1))
        ids = np.concatenate([ids, token[:, None]], axis=1)
        ended |= token == end
        if ended.all():
            break
    return ids


class CaptionInspector:
    name = CAPTION

    def __init__(self, model_dir: Path, *, max_tokens: int = 20, threads: int | None = None) -> None:
        model_dir = Path(model_dir)
        self.encoder, self.card = open_model(model_dir, threads)
        if self.card.kind != CAPTION or self.card.decoder_onnx_sha256 is None:
            raise ModelContractError(f"{model_dir}: a {self.card.kind} model, not a captioning model")
        self.decoder = open_second_graph(model_dir, DECODER_ONNX_FILE, self.card.decoder_onnx_sha256, threads)
        try:
            from tokenizers import Tokenizer  # imported only where a line has captions on
        except ImportError as exc:
            raise ModelContractError(
                "the caption specialist needs the package 'tokenizers' (pip install 'qcflow[caption]')"
            ) from exc

        text = self.card.training["text"]
        raw = read_checked(model_dir / TOKENIZER_FILE, text["tokenizer_sha256"])
        self.tokenizer = Tokenizer.from_str(raw.decode())
        self.start, self.end, self.pad = text["start_token_id"], text["end_token_id"], text["pad_token_id"]
        self.max_tokens = max_tokens
        self.version = self.card.version
        self.providers = tuple(self.encoder.get_providers())

    def _next_logits(self, ids: np.ndarray, states: np.ndarray) -> np.ndarray:
        (logits,) = self.decoder.run(["logits"], {"input_ids": ids, "encoder_hidden_states": states})
        return logits[:, -1]

    def encode(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """The encoder's states for the images, once a chunk."""
        pixels = to_model_input(images_bgr, self.card.preprocessing)
        (states,) = self.encoder.run(["encoder_hidden_states"], {"pixel_values": pixels})
        return states

    def decode(self, states: np.ndarray) -> np.ndarray:
        """Greedy token ids for the encoded images."""
        return greedy_tokens(self._next_logits, states, self.start, self.end, self.pad, self.max_tokens)

    def captions(self, images_bgr: Sequence[np.ndarray]) -> list[str]:
        rows = self.decode(self.encode(images_bgr)).tolist()
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows]

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        captions = self.captions([f.pixels for f in frames]) if frames else []
        return [
            [Finding(self.name, self.version, FindingKind.DESCRIPTION, label=CAPTION, text=text)]
            for text in captions
        ]
