"""Scale-out: two worker processes on one PostgreSQL database and one folder source."""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline.db.models import FrameRow, InspectionRow
from pipeline.fitting import register_model_dir
from pipeline.images import encode_png
from pipeline.inspection import inspect_camera, open_workspace, orchestrator_for
from pipeline.sources import SimulatedSource
from pipeline.types import sha256_hex
from tests.conftest import TEST_SIMULATION
from tests.flows.conftest import line_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N_FRAMES = 48
BATCH = 8


def _write_frames(folder: Path) -> set[str]:
    """Simulated parts as PNG files with strictly increasing modification times; their sha256s."""
    folder.mkdir()
    digests = set()
    for part in SimulatedSource(TEST_SIMULATION, "test", "cam1").line.parts(0, N_FRAMES):
        data = encode_png(part.image)
        path = folder / f"part-{part.index:04d}.png"
        path.write_bytes(data)
        os.utime(path, ns=(1_700_000_000_000_000_000 + part.index, 1_700_000_000_000_000_000 + part.index))
        digests.add(sha256_hex(data))
    return digests


def _worker(data_dir: str, config_dir: str, url: str, start: Barrier, results: mp.Queue) -> None:  # type: ignore[type-arg]
    """What one worker does run after run: inspect the next batch until the folder has nothing new."""
    ws = open_workspace(Path(data_dir), Path(config_dir), url)
    line = ws.line("test")
    orchestrator_for(ws, line)  # load the model before the race starts
    start.wait()
    frames = new = runs = 0
    while (summary := inspect_camera(ws, line, "cam1", max_frames=BATCH)).frames:
        frames, new, runs = frames + summary.frames, new + summary.new_inspections, runs + 1
    results.put((frames, new, runs))


def test_two_workers_inspect_every_frame_exactly_once(
    tmp_path: Path, pg_url: str, anomaly_model_dir: Path
) -> None:
    digests = _write_frames(tmp_path / "frames")
    config_dir = tmp_path / "config"
    line_config(config_dir, str(tmp_path / "frames"))
    ws = open_workspace(tmp_path / "data", config_dir, pg_url)
    register_model_dir(ws, anomaly_model_dir)

    context = mp.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    args = (str(ws.data_dir), str(config_dir), pg_url, start, results)
    workers = [context.Process(target=_worker, args=args) for _ in range(2)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(30)
        assert w.exitcode == 0

    frames, new, runs = (sum(column) for column in zip(*outcomes, strict=True))
    assert frames == N_FRAMES  # no frame was pulled by both workers (more would mean double work)
    assert new == N_FRAMES
    assert all(worker_runs >= 1 for _, _, worker_runs in outcomes)  # both really worked
    with ws.session() as session:
        inspected = set(session.scalars(select(FrameRow.sha256).join(InspectionRow)))
        count = session.scalar(select(func.count()).select_from(InspectionRow))
    assert inspected == digests  # none skipped
    assert count == N_FRAMES  # none inspected twice
    ws.engine.dispose()
