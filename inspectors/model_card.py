"""``model.json``: the contract and provenance that travel with every ONNX model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inspectors.preprocess import Preprocessing
from pipeline.decide import Thresholds
from pipeline.errors import ModelContractError

CARD_FILE = "model.json"
ONNX_FILE = "model.onnx"
CPU_ONNX_FILE = "model_cpu.onnx"  # the same model tuned for the CPU provider (anomaly models)
DECODER_ONNX_FILE = "decoder.onnx"  # a captioning model's text decoder; model.onnx is its image encoder
TOKENIZER_FILE = "tokenizer.json"  # a captioning model's tokenizer (Hugging Face tokenizers format)


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    version: str
    kind: str
    architecture: str
    inputs: dict[str, dict[str, Any]]  # name -> {"shape": [...], "dtype": "float32"}
    outputs: list[str]
    preprocessing: Preprocessing
    thresholds: Thresholds
    onnx_sha256: str
    cpu_onnx_sha256: str | None = None  # CPU_ONNX_FILE's, when the model has one
    decoder_onnx_sha256: str | None = None  # DECODER_ONNX_FILE's (captioning models)
    # None: the image score is the map's maximum. A number (anomaly models fitted with fine_score): the
    # image score is the graph's ``score`` output, and the map is multiplied by this to be on its scale.
    map_scale: float | None = None
    training: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocessing"] = self.preprocessing.to_json()
        data["thresholds"] = self.thresholds.as_json()
        return data

    def save(self, model_dir: Path) -> Path:
        path = model_dir / CARD_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        path = model_dir / CARD_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ModelContractError(f"{path}: model card not found") from exc
        except json.JSONDecodeError as exc:
            raise ModelContractError(f"{path}: not valid JSON ({exc})") from exc
        try:
            data["preprocessing"] = Preprocessing.from_json(data["preprocessing"])
            data["thresholds"] = Thresholds.from_json(data["thresholds"])
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelContractError(f"{path}: invalid model card: {exc}") from exc
