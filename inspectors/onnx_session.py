"""Open an ONNX Runtime session on the best provider and check its contract."""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from inspectors.cpu_features import has_int8_dot_product
from inspectors.model_card import CPU_ONNX_FILE, ONNX_FILE, ModelCard
from pipeline.config import load_environment
from pipeline.errors import ModelContractError, QCError
from pipeline.types import sha256_hex

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
TENSORRT_LIBRARY = "libnvinfer.so.10"  # the TensorRT that onnxruntime-gpu's TensorRT provider links
CUDA_DRIVER_LIBRARY = "libcuda.so.1"  # the NVIDIA driver, which both GPU providers link: no driver, no GPU
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# TensorRT's optimisation profile: the batch sizes its engines take, smallest, tuned for, largest (the
# inspectors' GPU batch is 16)
TENSORRT_BATCHES = (1, 16, 64)
_SIGN_SHIFT = 128  # uint8 level = int8 level + 128, for a bank's levels and its zero point alike
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
    """The preferred providers this ONNX Runtime offers, best first.

    onnxruntime-gpu lists its GPU providers whether or not the machine can run them; they are kept only
    where the NVIDIA driver loads, and TensorRT only where its library does, so that a machine without
    them goes straight to what it has instead of failing over with an error on every session. Choosing
    CUDA loads the CUDA and cuDNN libraries of the ``nvidia-*`` wheels that ``onnxruntime-gpu[cuda,cudnn]``
    installs, which are not on the loader's path.
    """
    available = ort.get_available_providers() if available is None else available
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    if any(p in _GPU_PROVIDERS for p in chosen) and not _loads(CUDA_DRIVER_LIBRARY):
        chosen = [p for p in chosen if p not in _GPU_PROVIDERS]
    if "TensorrtExecutionProvider" in chosen and not _loads(TENSORRT_LIBRARY):
        chosen.remove("TensorrtExecutionProvider")
    if "CUDAExecutionProvider" in chosen:
        _preload_cuda_libraries()
    return chosen


def _loads(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


@functools.cache
def _preload_cuda_libraries() -> None:
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu 1.21 and later
        ort.preload_dlls()


def open_model(model_dir: Path, threads: int | None = None) -> tuple[ort.InferenceSession, ModelCard]:
    """Session (on ``threads`` threads: ``session_options``) plus card; raises ModelContractError
    naming the file on any mismatch.

    Every graph file the card lists is checked against its sha256; the CPU provider loads the
    model's CPU graph when it has one, its bank's levels in the form this CPU multiplies best.
    """
    check_single_runtime()
    card = ModelCard.load(model_dir)
    graphs = {ONNX_FILE: card.onnx_sha256}
    if card.cpu_onnx_sha256 is not None:
        graphs[CPU_ONNX_FILE] = card.cpu_onnx_sha256
    data = {name: read_checked(model_dir / name, sha256) for name, sha256 in graphs.items()}
    providers = choose_providers()
    use_cpu_graph = providers[0] == "CPUExecutionProvider" and CPU_ONNX_FILE in data
    onnx_path = model_dir / (CPU_ONNX_FILE if use_cpu_graph else ONNX_FILE)
    signed = has_int8_dot_product()
    graph = bank_levels_for(data[CPU_ONNX_FILE], signed) if use_cpu_graph else data[ONNX_FILE]
    session = _session(graph, onnx_path, with_provider_options(providers, card), threads)
    check_contract(session, card, onnx_path)
    bank = f" ({'int8' if signed else 'uint8'} bank)" if use_cpu_graph else ""
    threads = session.get_session_options().intra_op_num_threads
    log.info(
        "%s %s: %s%s on %s, %s",
        card.name, card.version, onnx_path.name, bank, ", ".join(session.get_providers()),
        f"{threads} threads" if threads else "a thread per core",
    )  # fmt: skip
    return session, card


def open_second_graph(
    model_dir: Path, file_name: str, sha256: str, threads: int | None = None
) -> ort.InferenceSession:
    """A model's other graph (a captioning model's decoder), checked against its sha256, on the
    providers ``open_model`` chooses but TensorRT: the decoder's token axis grows at every step, and
    TensorRT would build an engine for each length."""
    path = model_dir / file_name
    providers = [p for p in choose_providers() if p != "TensorrtExecutionProvider"]
    return _session(read_checked(path, sha256), path, providers, threads)


def _session(
    graph: bytes, path: Path, providers: Sequence[str | tuple[str, dict[str, object]]], threads: int | None
) -> ort.InferenceSession:
    options = session_options(threads)
    try:
        return ort.InferenceSession(graph, options, providers=list(providers))
    except Exception as exc:  # ORT raises its own untyped errors for bad graphs
        raise ModelContractError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc


def with_provider_options(providers: list[str], card: ModelCard) -> list[str | tuple[str, dict[str, object]]]:
    """``providers`` as a session takes them, TensorRT with its options.

    TensorRT compiles its engines when a session opens, which takes minutes; they and its kernel
    timings are kept under ``QCFLOW_HOME/cache/tensorrt`` (engine files are named by graph and GPU), so
    a process that opens the same model again loads them. The optimisation profile spans batches
    ``TENSORRT_BATCHES``: without one, TensorRT builds another engine for every new batch size, such as a
    run's last, shorter chunk.
    """
    if "TensorrtExecutionProvider" not in providers:
        return list(providers)
    cache = Path(load_environment().home).resolve() / "cache" / "tensorrt"
    cache.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
    }
    options.update(_tensorrt_profile(card.inputs))
    return [(p, options) if p == "TensorrtExecutionProvider" else p for p in providers]


def _tensorrt_profile(inputs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` with the batch dimension at ``TENSORRT_BATCHES``; none where
    another dimension varies (TensorRT then profiles the shapes it meets)."""
    shapes = {name: list(spec["shape"]) for name, spec in inputs.items()}
    if any(None in dims[1:] for dims in shapes.values()):
        return {}
    return {
        f"trt_profile_{which}_shapes": ",".join(
            f"{name}:" + "x".join(str(batch if d is None else d) for d in dims)
            for name, dims in shapes.items()
        )
        for which, batch in zip(("min", "opt", "max"), TENSORRT_BATCHES, strict=True)
    }


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """ONNX Runtime's defaults, on ``threads`` threads, else ``QCFLOW_INFERENCE_THREADS`` where it is
    set, else one per core: two worker processes on a 2-core machine each with 2 threads fight over
    the cores."""
    options = ort.SessionOptions()
    threads = load_environment().session_threads(threads)
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def bank_levels_for(cpu_graph: bytes, signed: bool) -> bytes:
    """The CPU graph with its banks' 8-bit levels as int8 (``signed``) or as uint8, whichever they are not.

    Both forms hold the same values (level minus zero point, times the scale), so the product is the
    same. ONNX Runtime multiplies the features' uint8 by an int8 bank fastest on CPUs with an 8-bit dot
    product (VNNI: 2.1× the uint8 × uint8 product), but on x86 CPUs without one that product adds pairs
    in 16 bits and saturates; a uint8 bank widens first and never does.
    """
    model = onnx.load_model_from_string(cpu_graph)
    levels = [i for i in model.graph.initializer if i.name.endswith(("bank_q", "bank_zero"))]
    wanted = onnx.TensorProto.INT8 if signed else onnx.TensorProto.UINT8
    if all(i.data_type == wanted for i in levels):
        return cpu_graph
    shift = -_SIGN_SHIFT if signed else _SIGN_SHIFT
    for init in (i for i in levels if i.data_type != wanted):
        shifted = numpy_helper.to_array(init).astype(np.int16) + shift
        init.CopyFrom(numpy_helper.from_array(shifted.astype(np.int8 if signed else np.uint8), init.name))
    return model.SerializeToString()


def read_checked(path: Path, sha256: str) -> bytes:
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
