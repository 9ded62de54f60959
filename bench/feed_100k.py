"""Feed page time with 100,000 inspections on PostgreSQL.

    QCFLOW_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres python bench/feed_100k.py

Creates its own database on that server (dropped afterwards), fills it with
100,000 frames and inspections (90% on line ``big``, 10% on line ``small``,
findings for each) by bulk insert, then times the dashboard's pages in-process
through the ASGI stack (routing, session, queries, templates; no network).
Prints a table of median and 95th-percentile times and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.app import create_app  # noqa: E402
from dashboard.settings import DashboardEnvironment  # noqa: E402
from pipeline.db.engine import scratch_postgres_database  # noqa: E402
from pipeline.db.models import FindingRow, FrameRow, InspectionRow, LineRow, utcnow  # noqa: E402
from pipeline.inspection import Workspace, open_workspace  # noqa: E402
from pipeline.types import sha256_hex  # noqa: E402
from pipeline.users import Role, add_user  # noqa: E402

LINES = {"big": 0.9, "small": 0.1}
BATCH = 10_000
PASSWORD = "bench password"
LINE_YAML = """line_id: {line}
name: Line {line}
schedule: {{interval_seconds: 30}}
cameras:
  - {{camera_id: cam1, source: 'sim://{line}?seed=1'}}
specialists:
  anomaly: {{enabled: true, model: bench-anomaly}}
"""


def _decision(i: int) -> tuple[str, float]:
    """A plausible mix: about 90% PASS, 6% REVIEW, 4% FAIL, deterministic by index."""
    bucket = (i * 7919) % 100
    if bucket < 4:
        return "FAIL", 0.9 + bucket / 100
    if bucket < 10:
        return "REVIEW", 0.6 + bucket / 100
    return "PASS", 0.1 + bucket / 1000


def fill(ws: Workspace, total: int) -> None:
    """Bulk-insert ``total`` frames, inspections and findings (ids assigned in time order)."""
    now = utcnow()
    lines = [line for line, share in LINES.items() for _ in range(round(share * 10))]
    with ws.engine.begin() as connection:
        connection.execute(insert(LineRow), [{"line_id": line, "name": f"Line {line}"} for line in LINES])
    for start in range(0, total, BATCH):
        indexes = range(start, min(start + BATCH, total))
        frames, inspections, findings = [], [], []
        for i in indexes:
            at = now - timedelta(seconds=2 * (total - i))
            frames.append(
                {
                    "id": i + 1, "sha256": sha256_hex(f"frame {i}".encode()), "line_id": lines[i % 10],
                    "camera_id": "cam1", "captured_at": at, "source_uri": f"sim://bench#{i}",
                    "width": 320, "height": 320, "store_path": "-", "created_at": at,
                }
            )  # fmt: skip
            decision, score = _decision(i)
            inspections.append(
                {
                    "id": i + 1, "frame_id": i + 1, "config_hash": "bench", "decision": decision,
                    "reason": f"score {score:.3f}", "anomaly_score": score, "timings_ms": {}, "providers": [],
                    "model_versions": {"anomaly": "bench"}, "created_at": at,
                }
            )  # fmt: skip
            findings.append(
                {"inspection_id": i + 1, "specialist": "anomaly", "model_version": "bench", "kind": "anomaly",
                 "score": score}
            )  # fmt: skip
            if decision != "PASS":
                findings.append(
                    {"inspection_id": i + 1, "specialist": "anomaly", "model_version": "bench",
                     "kind": "anomaly", "score": score, "label": "crack", "box_x": 10, "box_y": 20,
                     "box_w": 30, "box_h": 12, "area_px": 200}
                )  # fmt: skip
        with ws.engine.begin() as connection:
            connection.execute(insert(FrameRow), frames)
            connection.execute(insert(InspectionRow), inspections)
            connection.execute(insert(FindingRow), findings)
    with ws.engine.begin() as connection:
        for table in ("frames", "inspections", "findings"):
            # explicit ids were inserted: move each sequence past them
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            connection.execute(text(f"SELECT setval({sequence}, max(id)) FROM {table}"))
    with ws.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


def time_pages(client: TestClient, pages: dict[str, str], repeats: int) -> dict[str, dict[str, float]]:
    results = {}
    for label, path in pages.items():
        client.get(path)  # warm caches and the template compile
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        times.sort()
        results[label] = {
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
            "bytes": len(response.content),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inspections", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench/out/feed_100k.json"))
    args = parser.parse_args()
    admin_url = os.environ.get("QCFLOW_TEST_PG_URL")
    if not admin_url:
        sys.exit("set QCFLOW_TEST_PG_URL to a PostgreSQL server URL where databases may be created")
    with scratch_postgres_database(admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp) / "config"
        (config_dir / "lines").mkdir(parents=True)
        (config_dir / "qcflow.yaml").write_text("lines_dir: lines\n")
        for line in LINES:
            (config_dir / "lines" / f"{line}.yaml").write_text(LINE_YAML.format(line=line))
        ws = open_workspace(Path(tmp) / "data", config_dir, url)
        started = time.perf_counter()
        fill(ws, args.inspections)
        fill_seconds = time.perf_counter() - started
        with ws.session() as session, session.begin():
            add_user(session, "bench", Role.ADMIN, PASSWORD)
            count = session.scalar(select(func.count()).select_from(InspectionRow))
            middle = args.inspections // 2
        client = TestClient(create_app(ws, DashboardEnvironment(secret="bench")), follow_redirects=False)
        login = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": login})
        pages = {
            "feed, line big, newest page": "/lines/big",
            "feed, line small (10%), newest page": "/lines/small",
            "feed, line big, FAIL only": "/lines/big?decision=FAIL",
            "feed, line small, FAIL only": "/lines/small?decision=FAIL",
            "feed, line big, page at the middle (keyset)": f"/lines/big?before={middle}",
            "feed, line big, score >= 0.95": "/lines/big?min_score=0.95",
            "lines overview table (hour + shift counts)": "/lines/table",
            "REVIEW queue": "/review",
        }
        results = time_pages(client, pages, args.repeats)
        ws.engine.dispose()
    report = {"inspections": count, "fill_seconds": round(fill_seconds, 1), "database": "PostgreSQL",
              "repeats": args.repeats, "pages": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{count} inspections on PostgreSQL (filled in {fill_seconds:.0f} s), {args.repeats} runs a page:")
    for label, r in results.items():
        print(f"  {label:<46} median {r['median_ms']:>7.1f} ms   p95 {r['p95_ms']:>7.1f} ms")


if __name__ == "__main__":
    main()
