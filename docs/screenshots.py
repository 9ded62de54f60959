"""Regenerate docs/screenshots/*.png: the demo line run for real, a live dashboard, headless Chromium.

    python docs/screenshots.py            # needs /usr/bin/chromium and the playwright package

Nothing is drawn by hand: the demo model is fitted, 60 frames of the simulated line are inspected
by the real specialists, a real report is built; only the three synthetic images in the review queue
are simulated defects standing in for a generator's output (fitting a generator takes too long here).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
from rich.console import Console  # noqa: E402
from sqlalchemy import select  # noqa: E402

from dashboard.live_server import chromium, serve  # noqa: E402
from dashboard.settings import DashboardEnvironment  # noqa: E402
from pipeline.db.models import FrameRow, InspectionRow  # noqa: E402
from pipeline.demo import ensure_demo_model  # noqa: E402
from pipeline.inspection import Workspace, inspect_camera, open_workspace  # noqa: E402
from pipeline.overrides import override_decision, unreviewed_review_band  # noqa: E402
from pipeline.reports.build import ModelUnderTest, build_report  # noqa: E402
from pipeline.reports.cli import load_scorer  # noqa: E402
from pipeline.reports.suites import create_suite, items_from_mvtec  # noqa: E402
from pipeline.simulate import SimulationSettings, render_part  # noqa: E402
from pipeline.types import Decision  # noqa: E402
from pipeline.users import Role, add_user, get_user  # noqa: E402
from tests.dashboard.sample_data import add_synthetic_images  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "screenshot password"


def _simulated_suite(folder: Path) -> Path:
    """A small MVTec-layout folder of simulated parts (good and defective, with masks)."""
    sim = SimulationSettings(size=320, seed=21)
    for i in range(2):
        (folder / "train" / "good").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "train" / "good" / f"{i}.png"), render_part(sim, i, defect=None).image)
    for i in range(10, 40):
        part = render_part(sim, i, defect=None if i % 2 else "auto")
        kind = part.defect or "good"
        (folder / "test" / kind).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "test" / kind / f"{i}.png"), part.image)
        if part.defect:
            (folder / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / "ground_truth" / kind / f"{i}_mask.png"), part.mask)
    return folder


def sample_workspace(root: Path) -> Workspace:
    """The demo line run for real: fitted model, inspections, a report; generated images stand in."""
    ws = open_workspace(root / "data", ROOT / "config", f"sqlite:///{root / 'qcflow.db'}")
    line = ws.line("demo")
    model = ensure_demo_model(ws, line, Console(quiet=True))
    inspect_camera(ws, line, "cam1", max_frames=60)
    add_synthetic_images(ws, 3, size=320)
    with ws.session() as session, session.begin():
        create_suite(session, "simulated-parts", items_from_mvtec(ws.store, _simulated_suite(root / "suite")))
    build_report(
        ws,
        "simulated-parts",
        [ModelUnderTest(model.name, load_scorer(ws, model.name))],
        root / "report",
        created_by="alex",
    )
    with ws.session() as session, session.begin():
        add_user(session, "alex", Role.ADMIN, PASSWORD, created_by="setup")
        admin = get_user(session, "alex")
        assert admin is not None
        first_review = unreviewed_review_band(session, limit=1)
        if first_review:
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
                .where(InspectionRow.decision == "FAIL", FrameRow.line_id == "demo")
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
            shoot(page, base, "/lines/demo", "feed")
            shoot(page, base, f"/inspections/{fail_id}", "inspection")
            shoot(page, base, "/review", "review-queue")
            shoot(page, base, "/synthetic", "synthetic-queue")
            shoot(page, base, "/models", "models")
            shoot(page, base, "/audit", "audit")
        ws.engine.dispose()


if __name__ == "__main__":
    main()
