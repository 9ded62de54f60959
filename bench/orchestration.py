"""Orchestration throughput: one inspect_line run with and without Prefect, and 1 vs 2 workers.

    python bench/orchestration.py --out bench/out/orchestration.json [--frames 64] \
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--model-dir DIR]

* plain: ``inspect_camera`` called directly (source -> ONNX -> decide -> database);
* prefect: the ``inspect-line`` flow (ephemeral Prefect; its one-off start-up is excluded);
* workers: processes inspecting a two-camera simulated line on one PostgreSQL database (a fresh,
  dropped-after database per measurement), one worker taking both cameras vs two workers.
Rounds alternate the variants so that load from other users of the machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from pipeline.db.engine import scratch_postgres_database
from pipeline.fitting import register_model_dir
from pipeline.inspection import Workspace, inspect_camera, open_workspace, orchestrator_for

CAMERAS = ("cam1", "cam2")


def write_config(config_dir: Path, batch_size: int) -> Path:
    (config_dir / "lines").mkdir(parents=True, exist_ok=True)
    (config_dir / "qcflow.yaml").write_text("lines_dir: lines\n")
    cameras = "".join(
        f"  - {{camera_id: {cam}, source: 'sim://bench?seed={i}&size=256'}}\n"
        for i, cam in enumerate(CAMERAS)
    )
    (config_dir / "lines" / "bench.yaml").write_text(
        f"line_id: bench\nname: Bench line\nschedule: {{interval_seconds: 60}}\nbatch_size: {batch_size}\n"
        f"cameras:\n{cameras}specialists:\n  anomaly: {{enabled: true, model: bench-anomaly}}\n"
    )
    return config_dir


def fit_bench_model(out: Path) -> Path:
    from inspectors.training.fit_anomaly import fit_anomaly, request_from_simulation
    from inspectors.training.patchcore import PatchCoreSettings
    from pipeline.sources import SimulatedSource

    simulation = SimulatedSource("sim://bench?seed=0&size=256", "bench", "cam1").line.settings
    request = request_from_simulation(
        simulation, "bench-anomaly", n_fit=24, n_calibration=24, settings=PatchCoreSettings(bank_size=512)
    )
    return fit_anomaly(request, out)[0]


def open_bench_workspace(root: Path, model_dir: Path, database_url: str | None, batch: int) -> Workspace:
    ws = open_workspace(root / "data", write_config(root / "config", batch), database_url)
    register_model_dir(ws, model_dir)
    return ws


def one_run_rates(ws: Workspace, frames: int, rounds: int) -> dict[str, list[float]]:
    """Frames/s of one run on cam1, directly and as the Prefect flow, alternating; also the CPU
    seconds per frame this process spent (all its threads, the ephemeral Prefect server's included),
    which other users of a shared machine do not distort the way they distort wall time."""
    from flows.inspect_line import inspect_line

    line = ws.line("bench")
    flow_args = {"camera_id": "cam1", "data_dir": str(ws.data_dir), "config_dir": str(ws.config_dir)}
    inspect_camera(ws, line, "cam1", max_frames=16)  # model loaded and cached
    inspect_line("bench", max_frames=16, **flow_args)  # ephemeral Prefect server started
    rates: dict[str, list[float]] = {"plain": [], "prefect": [], "plain_cpu": [], "prefect_cpu": []}
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        assert inspect_camera(ws, line, "cam1", max_frames=frames).frames == frames
        rates["plain"].append(frames / (time.perf_counter() - started))
        rates["plain_cpu"].append((time.process_time() - cpu) / frames)
        started, cpu = time.perf_counter(), time.process_time()
        assert inspect_line("bench", max_frames=frames, **flow_args)["frames"] == frames
        rates["prefect"].append(frames / (time.perf_counter() - started))
        rates["prefect_cpu"].append((time.process_time() - cpu) / frames)
    return rates


def _worker(root: str, url: str, cameras: list[str], frames: int, start: Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    ws = open_workspace(Path(root) / "data", Path(root) / "config", url)
    line = ws.line("bench")
    orchestrator_for(ws, line)
    start.wait()
    started, done = time.perf_counter(), 0
    for cam in cameras:
        target = done + frames  # the simulated line never runs dry: stop after ``frames`` of each camera
        while done < target:
            done += inspect_camera(ws, line, cam, max_frames=min(16, target - done)).frames
    out.put((done, time.perf_counter() - started))


def workers_rate(root: Path, url: str, n_workers: int, frames: int) -> float:
    """Frames/s of ``n_workers`` processes inspecting ``frames`` frames of each camera."""
    context = mp.get_context("spawn")
    start, out = context.Barrier(n_workers), context.Queue()
    shares = [list(CAMERAS)] if n_workers == 1 else [[cam] for cam in CAMERAS]
    processes = [
        context.Process(target=_worker, args=(str(root), url, share, frames, start, out)) for share in shares
    ]
    for p in processes:
        p.start()
    results = [out.get(timeout=900) for _ in processes]
    for p in processes:
        p.join()
    return sum(done for done, _ in results) / max(seconds for _, seconds in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=64, help="frames per run (per camera for workers)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", help="PostgreSQL admin URL for the worker measurement (skipped without)")
    parser.add_argument(
        "--model-dir", type=Path, help="an exported model folder (else a small one is fitted)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qcflow-bench-") as tmp:
        root = Path(tmp)
        os.environ["PREFECT_HOME"] = str(root / "prefect")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # busy machines
        model_dir = args.model_dir or fit_bench_model(root / "models")
        one_run = open_bench_workspace(root / "one-run", model_dir, None, args.frames)
        rates = one_run_rates(one_run, args.frames, args.rounds)
        median = {name: statistics.median(values) for name, values in rates.items()}
        result: dict[str, Any] = {
            "frames_per_run": args.frames,
            "cpu_count": os.cpu_count(),
            "plain_frames_per_s": rates["plain"],
            "prefect_frames_per_s": rates["prefect"],
            "plain_cpu_s_per_frame": rates["plain_cpu"],
            "prefect_cpu_s_per_frame": rates["prefect_cpu"],
            "prefect_overhead_wall": 1 - median["prefect"] / median["plain"],
            "prefect_overhead_cpu": median["prefect_cpu"] / median["plain_cpu"] - 1,
        }
        if args.pg_url:
            for n_workers in (1, 2):
                with scratch_postgres_database(args.pg_url) as url:
                    work_root = root / f"workers-{n_workers}"
                    open_bench_workspace(work_root, model_dir, url, args.frames).engine.dispose()
                    result[f"workers_{n_workers}_frames_per_s"] = workers_rate(
                        work_root, url, n_workers, args.frames
                    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
