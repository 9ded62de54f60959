"""ONNX Runtime session settings for the anomaly graph, side by side on the CPU.

    python -m bench.ort_settings [--frames 128]

Fits a small model on simulated good parts (as ``bench.anomaly_speed`` does) and times the CPU graph,
batch 1 and 2, preprocessing included, under each setting: graph optimisation level, intra-op threads,
thread spinning, and IO binding (outputs written into buffers allocated once).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.timing import timed
from inspectors.cpu_features import cpu_description, has_int8_dot_product
from inspectors.model_card import CPU_ONNX_FILE
from inspectors.onnx_session import bank_levels_for
from inspectors.preprocess import Preprocessing, to_model_input
from inspectors.training.fit_anomaly import export_and_calibrate, request_from_simulation
from inspectors.training.patchcore import PatchCoreSettings, fit_patchcore
from pipeline.simulate import SimulationSettings, render_part

LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _session(graph: bytes, level: str, threads: int, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _plain(session: ort.InferenceSession, prep: Preprocessing) -> Callable[[list[np.ndarray]], object]:
    return lambda images: session.run(["anomaly_map", "score"], {"image": to_model_input(images, prep)})


def _bound(session: ort.InferenceSession, prep: Preprocessing) -> Callable[[list[np.ndarray]], object]:
    """Outputs into buffers kept between calls of the same batch size."""
    buffers: dict[int, tuple[ort.IOBinding, list[np.ndarray]]] = {}
    size = prep.size

    def run(images: list[np.ndarray]) -> object:
        n = len(images)
        if n not in buffers:
            binding = session.io_binding()
            outputs = [np.empty((n, 1, *size), np.float32), np.empty(n, np.float32)]
            for name, array in zip(("anomaly_map", "score"), outputs, strict=True):
                binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
            buffers[n] = binding, outputs
        binding, outputs = buffers[n]
        binding.bind_cpu_input("image", to_model_input(images, prep))
        session.run_with_iobinding(binding)
        return outputs

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128)
    args = parser.parse_args()
    simulation = SimulationSettings(size=256, seed=5)
    request = request_from_simulation(
        simulation, "bench", n_fit=64, n_calibration=32, settings=PatchCoreSettings()
    )
    scorer = fit_patchcore(request.good_images, request.settings)
    root = Path(tempfile.mkdtemp(prefix="qcflow-bench-"))
    model_dir, card = export_and_calibrate(scorer, request, 0.0, root / "models")
    frames = [render_part(simulation, i).image for i in range(args.frames)]
    prep = card.preprocessing
    variants = [
        ("all, 2 threads, spinning (ORT default)", "all", 2, True, _plain),
        ("extended, 2 threads, spinning", "extended", 2, True, _plain),
        ("basic, 2 threads, spinning", "basic", 2, True, _plain),
        ("all, 1 thread", "all", 1, True, _plain),
        ("all, 2 threads, no spinning", "all", 2, False, _plain),
        ("all, 2 threads, spinning, IO binding", "all", 2, True, _bound),
    ]
    signed = has_int8_dot_product()  # the bank's form inspection loads on this CPU
    graph = bank_levels_for((model_dir / CPU_ONNX_FILE).read_bytes(), signed)
    bank = "int8" if signed else "uint8"
    print(f"ORT {ort.__version__}, {CPU_ONNX_FILE} ({bank} bank), {args.frames} frames of 256 px")
    print(f"CPU {cpu_description()}")
    print(f"{'setting':<42}{'b1 img/s':>10}{'b1 p99':>8}{'b2 img/s':>10}{'b2 p99':>8}")
    for label, level, threads, spinning, wrap in variants:
        run = wrap(_session(graph, level, threads, spinning), prep)
        one, two = timed(run, frames, 1), timed(run, frames, 2)
        print(
            f"{label:<42}{one['images_per_s']:>10.1f}{one['p99_ms']:>8.1f}"
            f"{two['images_per_s']:>10.1f}{two['p99_ms']:>8.1f}"
        )


if __name__ == "__main__":
    main()
