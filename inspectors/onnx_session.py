"""Open an ONNX Runtime session on the best provider and check its contract."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import onnxruntime as ort

from inspectors.model_card import ONNX_FILE, ModelCard
from pipeline.errors import ModelContractError, QCError
from pipeline.types import sha256_hex

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int64)": "int64"}


def check_single_runtime() -> None:
    """onnxruntime and onnxruntime-gpu share a module name; both installed breaks either."""
    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            installed.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        raise QCError(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other. "
            "Keep one: pip uninstall -y onnxruntime (GPU machines) or onnxruntime-gpu (CPU)."
        )


def choose_providers(available: list[str] | None = None) -> list[str]:
    available = ort.get_available_providers() if available is None else available
    return [p for p in PREFERRED_PROVIDERS if p in available]


def open_model(model_dir: Path) -> tuple[ort.InferenceSession, ModelCard]:
    """Session plus card; raises ModelContractError naming the file on any mismatch."""
    check_single_runtime()
    card = ModelCard.load(model_dir)
    onnx_path = model_dir / ONNX_FILE
    try:
        data = onnx_path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelContractError(f"{onnx_path}: model file not found") from exc
    if sha256_hex(data) != card.onnx_sha256:
        raise ModelContractError(f"{onnx_path}: sha256 differs from model.json (file replaced or corrupt)")
    try:
        session = ort.InferenceSession(data, providers=choose_providers())
    except Exception as exc:  # ORT raises its own untyped errors for bad graphs
        raise ModelContractError(f"{onnx_path}: ONNX Runtime cannot load it: {exc}") from exc
    check_contract(session, card, onnx_path)
    log.info("%s %s on %s", card.name, card.version, ", ".join(session.get_providers()))
    return session, card


def check_contract(session: ort.InferenceSession, card: ModelCard, where: Path) -> None:
    actual_in = {
        i.name: {
            "shape": [d if isinstance(d, int) else None for d in i.shape],
            "dtype": _ORT_TYPES.get(i.type, i.type),
        }
        for i in session.get_inputs()
    }
    if actual_in != card.inputs:
        raise ModelContractError(f"{where}: inputs expected {card.inputs}, model has {actual_in}")
    actual_out = [o.name for o in session.get_outputs()]
    if actual_out != card.outputs:
        raise ModelContractError(f"{where}: outputs expected {card.outputs}, model has {actual_out}")
