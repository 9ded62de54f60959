"""Image retention speed: how fast ``prune_images`` frees the store of a busy line.

    python bench/retention.py [--frames 20000] [--database-url URL]

Fills a fresh workspace (SQLite in a temporary folder unless a database URL is given) with
``--frames`` frames and inspections written through the repository, each with a stored frame of
about 90 KB and a heat map of about 8 KB (random bytes: the store does not look inside), 85% PASS,
10% REVIEW, 5% FAIL, all accepted 40 days ago; then times a dry run, the real pass at 30 days and
the next pass, which finds nothing left (the daily floor), and prints frames/s, MB freed and what is
left in the store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.db import repository as repo  # noqa: E402
from pipeline.db.models import FrameRow, utcnow  # noqa: E402
from pipeline.inspection import Workspace, open_workspace  # noqa: E402
from pipeline.retention import prune_images  # noqa: E402
from pipeline.types import Decision, Finding, FindingKind, Frame, InspectionResult, sha256_hex  # noqa: E402

BATCH = 500


def fill(ws: Workspace, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    decisions = rng.choice([Decision.PASS, Decision.REVIEW, Decision.FAIL], size=count, p=[0.85, 0.10, 0.05])
    pixels = np.zeros((256, 256, 3), np.uint8)  # the rows only need the frame's size and digest
    for start in range(0, count, BATCH):
        frames, results = [], []
        for i in range(start, min(count, start + BATCH)):
            data = rng.bytes(90_000)
            ws.store.put(data)
            heat = ws.store.put(rng.bytes(8_000))
            frame = Frame(pixels, "bench", "cam1", utcnow(), sha256_hex(data), f"bench://{i}", data)
            score = float(rng.random())
            findings = (Finding("anomaly", "bench-1", FindingKind.ANOMALY, score=score),)
            result = InspectionResult(frame.sha256, findings, decisions[i], "bench", {}, "bench")
            frames.append((frame, str(ws.store.path_for(frame.sha256))))
            results.append((result, heat))
        with ws.session() as session, session.begin():
            ids = repo.record_frames(session, frames)
            repo.record_inspections(session, [(i, r, h) for i, (r, h) in zip(ids, results, strict=True)])
    with ws.session() as session, session.begin():
        session.execute(update(FrameRow).values(created_at=utcnow() - timedelta(days=40)))


def store_mb(ws: Workspace) -> float:
    return sum(p.stat().st_size for p in (ws.store.root / "objects").rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in the temporary folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qcflow-retention-"))
    ws = open_workspace(root / "data", database_url=args.database_url)
    t0 = time.perf_counter()
    fill(ws, args.frames)
    written = time.perf_counter() - t0
    backend = ws.database_url.split(":")[0]
    print(f"{backend}: {args.frames} frames written in {written:.1f} s, {store_mb(ws):.0f} MB")
    for what, dry_run in (("dry run", True), ("prune", False), ("next pass", False)):
        t0 = time.perf_counter()
        summary = prune_images(ws, 30, by="bench", dry_run=dry_run)
        seconds = time.perf_counter() - t0
        print(
            f"{what}: {summary.frames} frames, {summary.heatmaps} heat maps, "
            f"{summary.bytes_freed / 2**20:.0f} MB in {seconds:.2f} s ({summary.frames / seconds:.0f}/s)"
        )
    print(f"store left: {store_mb(ws):.0f} MB (the FAIL and REVIEW frames' pictures)")


if __name__ == "__main__":
    main()
