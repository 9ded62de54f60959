"""Open an ONNX Runtime session on the best provider and check its contract."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import onnx
import onnxruntime as ort

from inspectors.model_card import CPU_ONNX_FILE, ONNX_FILE, ModelCard
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
    """Session plus card; raises ModelContractError naming the file on any mismatch.

    Every graph file the card lists is checked against its sha256; the CPU provider loads the
    model's CPU graph when it has one.
    """
    check_single_runtime()
    card = ModelCard.load(model_dir)
    graphs = {ONNX_FILE: card.onnx_sha256}
    if card.cpu_onnx_sha256 is not None:
        graphs[CPU_ONNX_FILE] = card.cpu_onnx_sha256
    data = {name: _read_checked(model_dir / name, sha256) for name, sha256 in graphs.items()}
    providers = choose_providers()
    on_cpu = providers[0] == "CPUExecutionProvider"
    use_cpu_graph = on_cpu and CPU_ONNX_FILE in data and _saturation_free(data[CPU_ONNX_FILE], model_dir)
    onnx_path = model_dir / (CPU_ONNX_FILE if use_cpu_graph else ONNX_FILE)
    try:
        session = ort.InferenceSession(data[onnx_path.name], providers=providers)
    except Exception as exc:  # ORT raises its own untyped errors for bad graphs
        raise ModelContractError(f"{onnx_path}: ONNX Runtime cannot load it: {exc}") from exc
    check_contract(session, card, onnx_path)
    log.info("%s %s: %s on %s", card.name, card.version, onnx_path.name, ", ".join(session.get_providers()))
    return session, card


def _saturation_free(cpu_graph: bytes, model_dir: Path) -> bool:
    """False for a CPU graph from before its bank was stored as uint8: its int8 product saturates on
    x86 CPUs without VNNI, so the exact graph is used until the model is refitted."""
    banks = [i for i in onnx.load_model_from_string(cpu_graph).graph.initializer if i.name.endswith("bank_q")]
    if any(i.data_type == onnx.TensorProto.INT8 for i in banks):
        log.warning("%s: its CPU graph has an int8 bank (before uint8 banks); using %s", model_dir, ONNX_FILE)
        return False
    return True


def _read_checked(path: Path, sha256: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelContractError(f"{path}: model file not found") from exc
    if sha256_hex(data) != sha256:
        raise ModelContractError(f"{path}: sha256 differs from model.json (file replaced or corrupt)")
    return data


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
