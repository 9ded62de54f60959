"""Anomaly specialist speed: torch reference vs ONNX Runtime, and end-to-end inspect frames/s.

    python -m bench.anomaly_speed [--frames 64] [--size 256] [--rounds 3] [--batches 1 2 8] [--device cpu]

Fits a model on simulated good parts, then, on the same frames, measures
images/s and p50/p99 latency at each batch size for the torch module (on
``--device``: ``cuda`` on a GPU machine) and for its exported ONNX graph on the
providers inspection picks (CUDA with onnxruntime-gpu; both paths include
preprocessing and return their results to the CPU), and the end-to-end
frames/s of ``inspect_camera`` over folders of the same frames as PNG and as JPEG files
(decode -> specialists -> decide -> store -> database row), split into the time
inside ONNX Runtime, the anomaly specialist's own pre- and post-processing, and
the pipeline around it, and against the model alone on the same inputs made
beforehand (the pipeline's overhead: with its stages overlapped, the time
inside ONNX Runtime also grows when the other stages slow the model down); for
reference, over the simulated camera (which also renders and encodes every
frame); and from JPEG files with the model's
outputs replayed, which gives the pipeline's own ceiling (a fast GPU's case).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from bench.simulated_line import LINE, fit_simulated_model, write_line_config
from bench.timing import timed
from inspectors.anomaly import AnomalyInspector
from inspectors.cpu_features import cpu_description
from inspectors.model_card import ONNX_FILE
from inspectors.preprocess import to_model_input
from pipeline.config import load_environment
from pipeline.fitting import register_model_dir
from pipeline.images import encode_jpeg, encode_png
from pipeline.inspection import inspect_camera, open_workspace, orchestrator_for
from pipeline.simulate import SimulationSettings, render_part
from pipeline.torch_device import torch_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of each path, medians shown")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--device", default="cpu", help="torch device of the reference: cpu, cuda, cuda:N")
    args = parser.parse_args()
    device = torch_device(args.device)
    simulation = SimulationSettings(size=args.size, seed=5)
    root = Path(tempfile.mkdtemp(prefix="qcflow-bench-"))
    scorer, model_dir, card, fit_s = fit_simulated_model(simulation, root)
    frames = [render_part(simulation, i).image for i in range(args.frames)]
    inspector = AnomalyInspector(model_dir)
    prep = card.preprocessing

    on_device = scorer.to(device)

    def torch_run(images: list[np.ndarray]) -> object:
        with torch.no_grad():
            return [t.cpu() for t in on_device(torch.from_numpy(to_model_input(images, prep)).to(device))]

    threads = torch.get_num_threads()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{threads} threads"
    print(f"ORT {ort.__version__} {inspector.providers}; torch {torch.__version__} on {where}")
    print(f"CPU {cpu_description()}")
    bank_mb = scorer.bank.numel() * 4 / 2**20
    onnx_mb = (model_dir / ONNX_FILE).stat().st_size / 2**20
    print(
        f"fit {fit_s:.1f}s on 64 parts; memory bank {tuple(scorer.bank.shape)} = {bank_mb:.1f} MB; "
        f"ONNX file {onnx_mb:.1f} MB"
    )
    exact = ort.InferenceSession(str(model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])

    def exact_run(images: list[np.ndarray]) -> object:
        return exact.run(None, {"image": to_model_input(images, prep)})

    # "onnx": what inspection runs (on the CPU, the CPU graph); "onnx-f32": model.onnx's float32 search;
    # "-lanes": called from the inspection lanes' threads at once, each on its share of the cores (torch's
    # threads are the process's: set for each path). Each round times every path once, in a rotated
    # order, so that a slow spell of a shared machine falls on all of them; ratios are taken within rounds.
    environment = load_environment()
    lanes, lane_threads = environment.lanes(), environment.lane_threads()
    print(f"{'path':<12}{'batch':>6}{'images/s':>10}{'min-max':>14}{'p50 ms':>9}{'p99 ms':>9}")
    for batch in args.batches:
        # (run, lanes, torch threads); the ONNX batch as given, not the inspector's default (CPU_BATCH)
        paths = {
            "torch": (torch_run, 1, threads),
            "torch-lanes": (torch_run, lanes, lane_threads),
            "onnx-f32": (exact_run, 1, threads),
            "onnx": (AnomalyInspector(model_dir, batch_size=batch).score_images, 1, threads),
            "onnx-lanes": (
                AnomalyInspector(model_dir, batch_size=batch, threads=lane_threads).score_images,
                lanes,
                threads,
            ),
        }
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        for r in range(args.rounds):
            order = list(paths)[r % len(paths) :] + list(paths)[: r % len(paths)]
            for name in order:
                run, path_lanes, torch_threads = paths[name]
                torch.set_num_threads(torch_threads)
                rounds[name].append(timed(run, frames, batch, path_lanes))
        torch.set_num_threads(threads)
        for name, figures in rounds.items():
            rates = [f["images_per_s"] for f in figures]
            p50, p99 = (statistics.median(f[k] for f in figures) for k in ("p50_ms", "p99_ms"))
            spread = f"{min(rates):.1f}-{max(rates):.1f}"
            print(f"{name:<12}{batch:>6}{statistics.median(rates):>10.1f}{spread:>14}{p50:>9.1f}{p99:>9.1f}")
        for onnx, reference in (("onnx", "torch"), ("onnx-lanes", "torch-lanes")):
            ratios = [
                o["images_per_s"] / t["images_per_s"]
                for o, t in zip(rounds[onnx], rounds[reference], strict=True)
            ]
            print(
                f"{onnx} / {reference} at batch {batch}: {statistics.median(ratios):.2f}x "
                f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"
            )
        best = [
            max(o["images_per_s"], ol["images_per_s"]) / max(t["images_per_s"], tl["images_per_s"])
            for o, ol, t, tl in zip(
                rounds["onnx"], rounds["onnx-lanes"], rounds["torch"], rounds["torch-lanes"], strict=True
            )
        ]
        print(
            f"onnx / torch, each its faster way, at batch {batch}: {statistics.median(best):.2f}x "
            f"(rounds {min(best):.2f}-{max(best):.2f})"
        )

    # PNG, as the simulated camera stores them (noise-textured frames: 2-3 ms to decode), and JPEG, as the
    # real datasets' cameras deliver them (a few tenths of a millisecond); "replay" holds the JPEG frames
    # again (other bytes, so new rows) for the run whose model outputs are replayed
    folders = {
        "png": (".png", encode_png),
        "jpg": (".jpg", lambda image: encode_jpeg(image, quality=95)),
        "replay": (".jpg", lambda image: encode_jpeg(image, quality=94)),
    }
    for name, (suffix, encode) in folders.items():
        (root / name).mkdir()
        for i, frame in enumerate(frames):
            (root / name / f"{i:05d}{suffix}").write_bytes(encode(frame))
    cameras = {name: str(root / name) for name in folders}
    config = write_line_config(root, {**cameras, "sim": f"sim://bench?seed=5&size={args.size}"})
    ws = open_workspace(root / "data", config)
    register_model_dir(ws, model_dir)
    line = ws.line(LINE)
    inspect_camera(ws, line, "sim", max_frames=16)  # warm-up: sessions, caches
    anomaly = next(i for i in orchestrator_for(ws, line).inspectors if isinstance(i, AnomalyInspector))
    # the model alone on the same frames, inputs made beforehand and batched as the specialist does:
    # what a pipeline that cost nothing would reach, run the faster of two ways: as inspection runs it
    # (its lanes at once, each session on its share of the cores) and one call at a time on a session
    # with a thread per core
    model_run, step = anomaly.session.run, anomaly.batch_size
    inputs = [to_model_input(frames[i : i + step], prep) for i in range(0, len(frames), step)]
    outputs = ["anomaly_map", "score"]

    def model_alone() -> tuple[float, float]:
        started = time.perf_counter()
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(lambda batch: model_run(outputs, {"image": batch}), inputs))
        laned = len(frames) / (time.perf_counter() - started)
        started = time.perf_counter()
        for batch in inputs:
            inspector.session.run(outputs, {"image": batch})
        return laned, len(frames) / (time.perf_counter() - started)

    # the cached orchestrator inspect_camera uses: ONNX Runtime alone, and the whole specialist
    in_ort, in_specialist = _Stopwatch(), _Stopwatch()
    anomaly.session.run = in_ort.wrap(anomaly.session.run)  # type: ignore[method-assign]
    anomaly.inspect = in_specialist.wrap(anomaly.inspect)  # type: ignore[method-assign]
    for camera, what in (
        ("png", "PNG files"),
        ("jpg", "JPEG files (quality 95)"),
        ("sim", "simulated camera"),
        ("replay", "JPEG files, the model's outputs replayed (inference free: the pipeline's ceiling)"),
    ):
        if camera == "replay":
            anomaly.session.run = _replaying(anomaly.session.run)  # type: ignore[method-assign]
        in_ort.seconds = in_specialist.seconds = 0.0
        before = model_alone()  # just before and after, so that both meet the machine in the same state
        summary = inspect_camera(ws, line, camera, max_frames=args.frames)
        laned, single = ((a + b) / 2 for a, b in zip(before, model_alone(), strict=True))
        alone = max(laned, single)
        rate = summary.frames / summary.seconds
        # shares of each lane's time: the lanes' stopwatches run side by side
        ort_share = in_ort.seconds / summary.seconds / lanes
        specialist_share = in_specialist.seconds / summary.seconds / lanes
        print(
            f"end-to-end inspect_camera (batch {anomaly.batch_size}, {lanes} lanes), {what}: {rate:.1f} "
            f"frames/s over {summary.frames} frames (each lane inside ONNX Runtime {ort_share:.0%} of the "
            f"time, in the anomaly specialist's pre- and post-processing {specialist_share - ort_share:.0%}, "
            f"outside it, deciding or waiting for frames {1 - specialist_share:.0%})"
        )
        if camera != "replay":
            print(
                f"  the model alone on these frames, just before and after: {laned:.1f} frames/s in "
                f"{lanes} lanes, {single:.1f} one call at a time on a thread per core; the pipeline's "
                f"overhead (1 - end to end / the faster): {1 - rate / alone:.0%}"
            )


def _replaying(run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` once per batch size, its outputs returned again after that: the work around the model
    stays the same (regions, heat maps, rows), the model costs nothing."""
    outputs: dict[int, Any] = {}

    def replay(names: Any, feed: dict[str, np.ndarray]) -> Any:
        n = len(feed["image"])
        if n not in outputs:
            outputs[n] = run(names, feed)
        return outputs[n]

    return replay


class _Stopwatch:
    """Adds up the seconds spent in the callables it wraps, from any number of threads."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._adding = threading.Lock()

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with self._adding:
                    self.seconds += elapsed

        return timed


if __name__ == "__main__":
    main()
