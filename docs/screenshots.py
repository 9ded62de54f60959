"""Regenerate docs/screenshots/*.png: a sample workspace, a live dashboard, headless Chromium.

    python docs/screenshots.py            # needs /usr/bin/chromium and the playwright package

Nothing is drawn by hand: the pages are the real templates over simulated parts
written through the pipeline, so the pictures change when the dashboard does.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from dashboard.live_server import chromium, serve  # noqa: E402
from dashboard.sample_data import add_models_and_report, add_synthetic_images, fill_line  # noqa: E402
from dashboard.settings import DashboardEnvironment  # noqa: E402
from pipeline.db.models import FrameRow, InspectionRow  # noqa: E402
from pipeline.inspection import Workspace, open_workspace  # noqa: E402
from pipeline.overrides import override_decision, unreviewed_review_band  # noqa: E402
from pipeline.types import Decision  # noqa: E402
from pipeline.users import Role, add_user, get_user  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "screenshot password"
LINE_YAML = """line_id: {line}
name: {name}
schedule: {{interval_seconds: 30}}
cameras:
  - {{camera_id: cam1, source: 'sim://{line}?seed=1', mm_per_px: 0.2}}
specialists:
  anomaly: {{enabled: true, model: disc-anomaly}}
"""


def sample_workspace(root: Path) -> Workspace:
    config_dir = root / "config"
    (config_dir / "lines").mkdir(parents=True)
    (config_dir / "qcflow.yaml").write_text("lines_dir: lines\n")
    for line, name in (("press-1", "Press line 1"), ("press-2", "Press line 2")):
        (config_dir / "lines" / f"{line}.yaml").write_text(LINE_YAML.format(line=line, name=name))
    ws = open_workspace(root / "data", config_dir, f"sqlite:///{root / 'qcflow.db'}")
    fill_line(ws, "press-1", 40, seed=11, size=320)
    fill_line(ws, "press-2", 12, seed=12, size=320)
    add_synthetic_images(ws, 3, size=320)
    add_models_and_report(ws, "disc-anomaly")
    with ws.session() as session, session.begin():
        add_user(session, "alex", Role.ADMIN, PASSWORD, created_by="setup")
        admin = get_user(session, "alex")
        assert admin is not None
        first_review = unreviewed_review_band(session, limit=1)
        override_decision(session, admin, first_review[0], Decision.PASS, "Cosmetic only, within spec")
    return ws


def shoot(page: Any, base: str, path: str, name: str) -> None:
    page.goto(f"{base}{path}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
    print(f"wrote {OUT / name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = sample_workspace(Path(tmp))
        with ws.session() as session:
            fail_id = session.scalar(
                select(InspectionRow.id)
                .join(FrameRow, InspectionRow.frame_id == FrameRow.id)
                .where(InspectionRow.decision == "FAIL", FrameRow.line_id == "press-1")
                .order_by(InspectionRow.id.desc())
                .limit(1)
            )
        with serve(ws, DashboardEnvironment(secret="screenshots")) as base, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            shoot(page, base, "/login", "login")
            page.fill('input[name="username"]', "alex")
            page.fill('input[name="password"]', PASSWORD)
            page.click('button[type="submit"]')
            page.wait_for_url(f"{base}/")
            shoot(page, base, "/", "lines")
            shoot(page, base, "/lines/press-1", "feed")
            shoot(page, base, f"/inspections/{fail_id}", "inspection")
            shoot(page, base, "/review", "review-queue")
            shoot(page, base, "/synthetic", "synthetic-queue")
            shoot(page, base, "/models", "models")
            shoot(page, base, "/audit", "audit")
        ws.engine.dispose()


if __name__ == "__main__":
    main()
