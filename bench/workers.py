"""Several inspection workers on one machine: frames/s of all together, by ONNX Runtime threads each.

    python -m bench.workers [--frames 256] [--size 256] [--layouts 1x0 2x0 2x1] [--rounds 2]

A layout ``PxT`` runs P worker processes at once, each with ``QCFLOW_INFERENCE_THREADS=T`` (0: unset,
the cores shared out among the worker's inspection lanes, ``QCFLOW_INFERENCE_LANES`` as the shell sets
it), each inspecting ``--frames`` JPEG frames of a simulated line into its
own data folder (as two lines, or two cameras of one line, would). They start together; the figure is
all their frames over the wall time until the last one ends.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.simulated_line import LINE, fit_simulated_model, write_line_config
from inspectors.cpu_features import cpu_description
from pipeline.config import THREADS_ENV, load_environment
from pipeline.fitting import register_model_dir
from pipeline.images import encode_jpeg
from pipeline.inspection import inspect_camera, open_workspace
from pipeline.simulate import SimulationSettings, render_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256, help="frames per worker")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--layouts", nargs="+", default=["1x0", "2x0", "2x1"], help="PROCESSESxTHREADS")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every layout, alternating")
    args = parser.parse_args()
    simulation = SimulationSettings(size=args.size, seed=5)
    root = Path(tempfile.mkdtemp(prefix="qcflow-bench-"))
    _, model_dir, _, _ = fit_simulated_model(simulation, root)
    frames = root / "frames"
    frames.mkdir()
    for i in range(args.frames + 16):  # 16 more for each worker's warm-up
        (frames / f"{i:05d}.jpg").write_bytes(encode_jpeg(render_part(simulation, i).image, quality=95))
    config = write_line_config(root, {"files": str(frames)})
    print(
        f"CPU {cpu_description()}, {os.cpu_count()} cores; {args.frames} frames of {args.size} px per "
        f"worker, {load_environment().lanes()} inspection lanes each"
    )
    results: dict[str, list[float]] = {layout: [] for layout in args.layouts}
    for r in range(args.rounds):
        for layout in args.layouts:
            processes, threads = (int(n) for n in layout.split("x"))
            run = root / f"run-{r}-{layout}"
            results[layout].append(_run_layout(processes, threads, run, config, model_dir, args.frames))
    print(f"{'layout':<8}{'processes':>10}{'threads':>9}{'frames/s':>10}   rounds")
    for layout, rates in results.items():
        processes, threads = layout.split("x")
        threads = "share" if threads == "0" else threads  # the cores shared out among the lanes
        shown = ", ".join(f"{rate:.1f}" for rate in rates)
        print(f"{layout:<8}{processes:>10}{threads:>9}{statistics.median(rates):>10.1f}   {shown}")


def _run_layout(processes: int, threads: int, run: Path, config: Path, model_dir: Path, frames: int) -> float:
    context = mp.get_context("spawn")  # a fresh interpreter each: no session or thread pool inherited
    ready, go = context.Barrier(processes + 1), context.Event()
    done: Any = context.Queue()
    workers = [
        context.Process(
            target=_worker, args=(threads, run / f"worker-{w}", config, model_dir, frames, ready, go, done)
        )
        for w in range(processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait()  # every worker has its session and has inspected its warm-up frames
    started = time.perf_counter()
    go.set()
    counted = sum(done.get() for _ in workers)
    wall = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return counted / wall


def _worker(
    threads: int, data: Path, config: Path, model_dir: Path, frames: int, ready: Any, go: Any, done: Any
) -> None:
    if threads:
        os.environ[THREADS_ENV] = str(threads)
    else:  # the lanes' share of the cores, whatever the shell that started the benchmark set
        os.environ.pop(THREADS_ENV, None)
    ws = open_workspace(data, config)
    register_model_dir(ws, model_dir)
    line = ws.line(LINE)
    inspect_camera(ws, line, "files", max_frames=16)
    ready.wait()
    go.wait()
    done.put(inspect_camera(ws, line, "files", max_frames=frames).frames)


if __name__ == "__main__":
    main()
