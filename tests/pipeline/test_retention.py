"""Image retention removes only the pictures nothing needs any more, and keeps every row."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from pipeline.audit import list_audit
from pipeline.cli import app
from pipeline.db import repository as repo
from pipeline.db.models import (
    FindingRow,
    FrameRow,
    InspectionReviewRow,
    InspectionRow,
    SuiteItemRow,
    SuiteRow,
    utcnow,
)
from pipeline.errors import ConfigError, DatasetError
from pipeline.generation import base_images
from pipeline.images import decode_image
from pipeline.inspection import Workspace, open_workspace
from pipeline.retention import prune_images, retention_days
from pipeline.types import Frame
from tests.dashboard.sample_data import fill_line

LINE = "ret-line"
ROOT_CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def ws(tmp_path: Path, db_url: str) -> Workspace:
    config = tmp_path / "config"
    shutil.copytree(ROOT_CONFIG, config)
    ws = open_workspace(tmp_path / "data", config, db_url)
    fill_line(ws, LINE, 24)
    return ws


def _frames(ws: Workspace) -> dict[int, tuple[str, str, str | None, bool]]:
    """frame id -> (sha256, decisions joined, heat map, picture pruned)."""
    with ws.session() as session:
        rows = session.execute(
            select(FrameRow.id, FrameRow.sha256, InspectionRow.decision, InspectionRow.heatmap_sha256)
            .join(InspectionRow, InspectionRow.frame_id == FrameRow.id)
            .order_by(FrameRow.id)
        ).all()
        pruned = set(session.scalars(select(FrameRow.id).where(FrameRow.image_pruned_at.is_not(None))))
    return {i: (sha, decision, heat, i in pruned) for i, sha, decision, heat in rows}


def _age(ws: Workspace, days: float, frame_ids: list[int] | None = None) -> None:
    """Move frames' acceptance time back by ``days`` (all frames when no ids)."""
    with ws.session() as session, session.begin():
        stmt = update(FrameRow).values(created_at=utcnow() - timedelta(days=days))
        if frame_ids is not None:
            stmt = stmt.where(FrameRow.id.in_(frame_ids))
        session.execute(stmt)


def _keep_days(ws: Workspace, value: str) -> None:
    """Set ``retention.keep_passed_images_days`` in the workspace's qcflow.yaml."""
    config = ws.config_dir / "qcflow.yaml"
    text = re.sub(r"keep_passed_images_days: \S+", f"keep_passed_images_days: {value}", config.read_text())
    config.write_text(text)


def _counts(ws: Workspace) -> list[int | None]:
    with ws.session() as session:
        tables = (FrameRow, InspectionRow, FindingRow)
        return [session.scalar(select(func.count()).select_from(t)) for t in tables]


def test_only_old_passed_frames_lose_their_pictures_and_rows_stay(ws: Workspace) -> None:
    frames = _frames(ws)
    passed = [i for i, (_, d, _, _) in frames.items() if d == "PASS"]
    others = [i for i, (_, d, _, _) in frames.items() if d != "PASS"]
    assert len(passed) >= 4 and others, "the sample line must hold both kinds"
    recent = passed[:2]
    _age(ws, 40)
    _age(ws, 1, recent)
    before = _counts(ws)

    summary = prune_images(ws, 30, by="tester")

    after = _frames(ws)
    old_passed = [i for i in passed if i not in recent]
    assert summary.frames == len(old_passed) and summary.heatmaps == len(old_passed)
    assert summary.bytes_freed > 0 and not summary.dry_run
    for i, (sha, _, heat, pruned) in after.items():
        gone = i in old_passed
        assert pruned == gone
        assert ws.store.path_for(sha).exists() != gone
        assert heat is not None and ws.store.path_for(heat).exists() != gone
    assert _counts(ws) == before  # frames, inspections and findings all kept
    with ws.session() as session:
        entries = [e for e in list_audit(session) if e.action == "images.prune"]
    assert [e.after["frames"] for e in entries if e.after] == [len(old_passed)]
    assert entries[0].user_name == "tester"

    again = prune_images(ws, 30, by="tester")
    assert (again.frames, again.heatmaps, again.bytes_freed) == (0, 0, 0)


def test_dry_run_counts_and_removes_nothing(ws: Workspace) -> None:
    _age(ws, 40)
    stored = sorted(p.name for p in (ws.store.root / "objects").rglob("*") if p.is_file())
    summary = prune_images(ws, 30, by="tester", dry_run=True)
    assert summary.dry_run and summary.frames > 0 and summary.bytes_freed > 0
    assert sorted(p.name for p in (ws.store.root / "objects").rglob("*") if p.is_file()) == stored
    assert not any(pruned for *_, pruned in _frames(ws).values())
    assert prune_images(ws, 30, by="tester").bytes_freed == summary.bytes_freed


def test_reviewed_frames_and_pictures_in_use_are_kept(ws: Workspace) -> None:
    frames = _frames(ws)
    passed = [i for i, (_, d, _, _) in frames.items() if d == "PASS"]
    reviewed, in_suite = passed[0], passed[1]
    with ws.session() as session, session.begin():
        inspection = session.scalar(select(InspectionRow.id).where(InspectionRow.frame_id == reviewed))
        review = InspectionReviewRow(inspection_id=inspection, decision="PASS", reason="ok", user_name="rita")
        session.add(review)
        suite = SuiteRow(name="kept")
        session.add(suite)
        session.flush()
        session.add(SuiteItemRow(suite_id=suite.id, image_sha256=frames[in_suite][0], label="good"))
    _age(ws, 40)

    summary = prune_images(ws, 30, by="tester")

    after = _frames(ws)
    assert summary.frames == len(passed) - 2 and summary.kept_in_use == 1
    for i in (reviewed, in_suite):
        sha, _, heat, pruned = after[i]
        assert not pruned and ws.store.path_for(sha).exists()
        assert heat is not None and ws.store.path_for(heat).exists()
    assert all(after[i][3] for i in passed[2:])


def test_line_filter_and_generator_bases_skip_pruned_frames(ws: Workspace) -> None:
    fill_line(ws, "other-line", 6, seed=7)
    _age(ws, 40)
    bases_before = {b.sha256 for b in base_images(ws, LINE, "good")}
    with ws.session() as session:
        line_of = {i: line for i, line in session.execute(select(FrameRow.id, FrameRow.line_id))}

    summary = prune_images(ws, 30, by="tester", line_id="other-line")

    pruned = {i for i, (*_, gone) in _frames(ws).items() if gone}
    assert summary.frames == len(pruned) > 0
    assert {line_of[i] for i in pruned} == {"other-line"}
    assert {b.sha256 for b in base_images(ws, LINE, "good")} == bases_before
    prune_images(ws, 30, by="tester", line_id=LINE)
    with pytest.raises(DatasetError, match="passed inspection"):
        base_images(ws, LINE, "good")


def test_age_comes_from_the_configuration_or_is_refused(ws: Workspace) -> None:
    with pytest.raises(ConfigError, match="keep_passed_images_days"):
        retention_days(ws, None)
    assert retention_days(ws, 7) == 7
    _keep_days(ws, "45")
    assert retention_days(ws, None) == 45
    _keep_days(ws, "-1")
    with pytest.raises(ConfigError, match=r"retention\.keep_passed_images_days"):
        retention_days(ws, None)


def test_cli_prunes_and_says_what_it_did(ws: Workspace) -> None:
    _age(ws, 40)
    args = ["--data-dir", str(ws.data_dir), "--config-dir", str(ws.config_dir)]
    missing = CliRunner().invoke(app, ["prune-images", *args], env={"QCFLOW_DATABASE_URL": ws.database_url})
    assert missing.exit_code == 2 and "keep_passed_images_days" in missing.output
    env = {"QCFLOW_DATABASE_URL": ws.database_url}
    dry = CliRunner().invoke(app, ["prune-images", "--older-than-days", "30", "--dry-run", *args], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would remove the pictures of" in dry.output
    assert not any(pruned for *_, pruned in _frames(ws).values())
    done = CliRunner().invoke(app, ["prune-images", "--older-than-days", "30", *args], env=env)
    assert done.exit_code == 0, done.output
    count = sum(pruned for *_, pruned in _frames(ws).values())
    assert count > 0 and f"removed the pictures of {count} passed frames" in done.output


def test_scheduled_flow_prunes_by_the_configured_age(ws: Workspace) -> None:
    from flows.prune_images import prune_images as prune_flow

    _age(ws, 40)
    _keep_days(ws, "60")
    args = {"data_dir": str(ws.data_dir), "config_dir": str(ws.config_dir), "database_url": ws.database_url}
    assert prune_flow.fn(**args)["frames"] == 0  # 40 days old, 60 kept
    _keep_days(ws, "30")
    result = prune_flow.fn(**args)
    assert result["frames"] == sum(pruned for *_, pruned in _frames(ws).values()) > 0
    with ws.session() as session:
        users = {e.user_name for e in list_audit(session) if e.action == "images.prune"}
    assert users == {"flow:prune-images"}


def test_a_frame_that_stopped_being_prunable_mid_pass_keeps_its_picture(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marks are re-checked when written: a frame chosen before a FAIL or a review came in stays."""
    from pipeline import retention

    frames = _frames(ws)
    failed = next(i for i, (_, d, _, _) in frames.items() if d != "PASS")
    sha, _, heat, _ = frames[failed]
    assert heat is not None
    chosen = retention._chunk

    def with_a_late_decision(session, shas):  # type: ignore[no-untyped-def]
        chunk = chosen(session, shas)
        return retention._Chunk({**chunk.pictures, failed: [sha, heat]}, chunk.kept_in_use)

    monkeypatch.setattr(retention, "_chunk", with_a_late_decision)
    _age(ws, 40)
    summary = prune_images(ws, 30, by="tester")

    passed = [i for i, (_, d, _, _) in frames.items() if d == "PASS"]
    assert summary.frames == len(passed)
    assert not _frames(ws)[failed][3]
    assert ws.store.path_for(sha).exists() and ws.store.path_for(heat).exists()


def test_a_pruned_frame_that_arrives_again_is_pictured_again(ws: Workspace) -> None:
    frames = _frames(ws)
    passed = next(i for i, (_, d, _, _) in frames.items() if d == "PASS")
    sha = frames[passed][0]
    data = ws.store.get(sha)
    _age(ws, 40)
    prune_images(ws, 30, by="tester")
    assert _frames(ws)[passed][3] and not ws.store.path_for(sha).exists()

    ws.store.put(data)  # as an inspection run stores a frame before recording it
    frame = Frame(decode_image(data, "again"), LINE, "cam1", utcnow(), sha, "sim://again", data)
    with ws.session() as session, session.begin():
        assert repo.record_frames(session, [(frame, str(ws.store.path_for(sha)))]) == [passed]

    assert not _frames(ws)[passed][3]
    assert prune_images(ws, 30, by="tester").frames == 1  # still old and passed: it may go again
