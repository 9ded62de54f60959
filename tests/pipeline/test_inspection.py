"""source -> orchestrator -> decide -> db, without Prefect."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from sqlalchemy import func, select

from pipeline import inspection
from pipeline.config import load_line
from pipeline.db import repository as repo
from pipeline.db.models import FindingRow, FrameRow, InspectionRow
from pipeline.errors import ConfigError, ModelNotFound, SourceUnavailable
from pipeline.inspection import CHUNK, Workspace, inspect_camera
from pipeline.simulate import SimulationSettings, render_part
from pipeline.sources import Pulled
from pipeline.types import Decision
from tests.conftest import write_line_config


def _count(ws: Workspace, row: type) -> int:
    with ws.session() as session:
        return int(session.scalar(select(func.count()).select_from(row)) or 0)


def test_logs_every_frame_once_and_resumes_after_the_watermark(workspace: Workspace) -> None:
    line = workspace.line("test")
    first = inspect_camera(workspace, line, "cam1", max_frames=20)
    assert first.frames == first.new_inspections == 20
    assert sum(first.decisions.values()) == 20
    second = inspect_camera(workspace, line, "cam1", max_frames=12)
    assert second.new_inspections == 12
    assert _count(workspace, FrameRow) == _count(workspace, InspectionRow) == 32
    with workspace.session() as session:
        counts = repo.decision_counts(session, "test")
        recent = repo.recent_inspections(session, "test", limit=40)
    assert sum(counts.values()) == 32
    assert all(workspace.store.path_for(r.frame_sha256).is_file() for r in recent)
    assert all(r.heatmap_sha256 and workspace.store.path_for(r.heatmap_sha256).is_file() for r in recent)
    assert {r.model_versions["anomaly"] for r in recent} == {recent[0].model_versions["anomaly"]}


def test_reinspecting_the_same_frames_adds_no_rows(workspace: Workspace) -> None:
    line = workspace.line("test")
    inspect_camera(workspace, line, "cam1", max_frames=10)
    with workspace.session() as session, session.begin():
        repo.set_watermark(session, "test", "cam1", line.cameras[0].source, "-1")
    again = inspect_camera(workspace, line, "cam1", max_frames=10)
    assert again.frames == 10 and again.new_inspections == 0
    assert _count(workspace, InspectionRow) == 10


def test_decisions_follow_the_ground_truth(workspace: Workspace) -> None:
    summary = inspect_camera(workspace, workspace.line("test"), "cam1", max_frames=40)
    truth = {round(s, 5): bool(t) for s, t in summary.scored_truth}
    with workspace.session() as session:
        recent = repo.recent_inspections(session, "test", limit=40)
    defective = [r for r in recent if truth[round(r.anomaly_score, 5)]]
    failed = [r for r in recent if r.decision is Decision.FAIL]
    assert len(defective) >= 5
    caught = [r for r in defective if r.decision is not Decision.PASS]
    assert len(caught) / len(defective) >= 0.9, "defective parts passed"
    assert sum(truth[round(r.anomaly_score, 5)] for r in failed) / len(failed) >= 0.8, "good parts failed"
    assert _count(workspace, FindingRow) > len(recent)  # region findings besides the image scores


def test_corrupt_file_is_recorded_and_the_run_goes_on(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    sim = SimulationSettings(size=256, seed=3)
    for i in range(3):
        cv2.imwrite(str(folder / f"part{i}.png"), render_part(sim, i, defect=None).image)
    (folder / "part3.png").write_bytes(b"\x89PNG truncated")
    config = write_line_config(tmp_path / "config2", str(folder), line_id="folder")
    line = load_line(config, "folder")
    summary = inspect_camera(workspace, line, "cam1")
    assert (summary.frames, summary.frame_errors) == (3, 1)
    with workspace.session() as session:
        assert repo.count_frame_errors(session, "folder") == 1
    assert inspect_camera(workspace, line, "cam1").frames == 0  # nothing re-read, nothing lost


def test_unknown_camera_and_model_are_clear_errors(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no camera 'cam9'"):
        inspect_camera(workspace, workspace.line("test"), "cam9")
    config = write_line_config(tmp_path / "config3", "sim://x", line_id="other", model="missing-model")
    with pytest.raises(ModelNotFound, match="missing-model"):
        inspect_camera(workspace, load_line(config, "other"), "cam1")


def test_a_failed_commit_keeps_the_chunks_before_it_and_the_next_run_resumes_there(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chunks are read, inspected and committed by three threads at once; the third commit fails
    line = workspace.line("test")
    commits = 0
    set_watermark = repo.set_watermark

    def failing_third(*args: Any) -> None:
        nonlocal commits
        commits += 1
        if commits == 3:
            raise OSError("database went away")
        set_watermark(*args)

    monkeypatch.setattr(repo, "set_watermark", failing_third)
    with pytest.raises(OSError, match="database went away"):
        inspect_camera(workspace, line, "cam1", max_frames=5 * CHUNK)
    assert _count(workspace, InspectionRow) == 2 * CHUNK  # the failed chunk's rows rolled back
    monkeypatch.setattr(repo, "set_watermark", set_watermark)
    rest = inspect_camera(workspace, line, "cam1", max_frames=3 * CHUNK)
    assert rest.new_inspections == 3 * CHUNK
    with workspace.session() as session:
        frames = [r.frame_sha256 for r in repo.recent_inspections(session, "test", limit=10 * CHUNK)]
    assert _count(workspace, InspectionRow) == len(set(frames)) == 5 * CHUNK


def test_a_source_lost_mid_run_keeps_the_chunks_read_before(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = workspace.line("test")
    real_open = inspection.open_source

    class Dropping:
        def __init__(self, *args: Any) -> None:
            self.source = real_open(*args)
            self.uri = self.source.uri

        def read(self, since: str | None, limit: int) -> Iterator[Pulled]:
            yield from itertools.islice(self.source.read(since, limit), 2 * CHUNK + 3)
            raise SourceUnavailable("stream lost")

    monkeypatch.setattr(inspection, "open_source", Dropping)
    with pytest.raises(SourceUnavailable, match="stream lost"):
        inspect_camera(workspace, line, "cam1", max_frames=5 * CHUNK)
    assert _count(workspace, InspectionRow) == 2 * CHUNK  # the partial third chunk is read again next time
