"""Inspection lanes: several chunks in the models at once, logged in the source's order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.config import INFERENCE_LANES, load_environment
from pipeline.db import repository as repo
from pipeline.db.models import FrameRow, InspectionRow
from pipeline.errors import ConfigError
from pipeline.fitting import register_model_dir
from pipeline.inspection import CHUNK, Workspace, inspect_camera, open_workspace, orchestrator_for
from pipeline.sources import open_source
from tests.conftest import TEST_SIMULATION, write_line_config

FRAMES = 3 * CHUNK + 5  # three whole chunks and a short one


def _logged(ws: Workspace) -> list[tuple[str, str, float]]:
    """(frame sha256, decision, anomaly score) of every inspection, in the order the frames were logged."""
    with ws.session() as session:
        rows = session.execute(
            select(FrameRow.sha256, InspectionRow.decision, InspectionRow.anomaly_score)
            .join(InspectionRow, InspectionRow.frame_id == FrameRow.id)
            .order_by(FrameRow.id)
        )
        return [(sha, str(decision), round(float(score), 5)) for sha, decision, score in rows]


def _second_workspace(tmp_path: Path, anomaly_model_dir: Path) -> Workspace:
    ws = open_workspace(tmp_path / "data2", write_line_config(tmp_path / "config2", TEST_SIMULATION))
    register_model_dir(ws, anomaly_model_dir)
    return ws


def test_several_lanes_log_what_one_lane_logs_in_the_sources_order(
    workspace: Workspace, tmp_path: Path, anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = workspace.line("test")
    source = [p.frame for p in open_source(TEST_SIMULATION, "test", "cam1").read(None, FRAMES)]
    monkeypatch.setenv("QCFLOW_INFERENCE_LANES", "1")
    one = inspect_camera(workspace, line, "cam1", max_frames=FRAMES)
    other = _second_workspace(tmp_path, anomaly_model_dir)
    monkeypatch.setenv("QCFLOW_INFERENCE_LANES", "3")
    three = inspect_camera(other, other.line("test"), "cam1", max_frames=FRAMES)
    assert one.new_inspections == three.new_inspections == FRAMES
    assert one.decisions == three.decisions
    assert _logged(other) == _logged(workspace)
    assert [sha for sha, _, _ in _logged(other)] == [f.sha256 for f in source if f is not None]
    with other.session() as session:
        assert repo.get_watermark(session, "test", "cam1", TEST_SIMULATION) == str(FRAMES - 1)
    other.engine.dispose()


def test_each_lane_gets_its_share_of_the_cores(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv("QCFLOW_INFERENCE_THREADS", raising=False)
    monkeypatch.delenv("QCFLOW_INFERENCE_LANES", raising=False)
    assert load_environment().lanes() == INFERENCE_LANES == 2
    assert load_environment().lane_threads() == 4
    anomaly = orchestrator_for(workspace, workspace.line("test")).inspectors[0]
    assert anomaly.session.get_session_options().intra_op_num_threads == 4  # type: ignore[union-attr]
    monkeypatch.setenv("QCFLOW_INFERENCE_LANES", "3")
    assert load_environment().lane_threads() == 2
    monkeypatch.setenv("QCFLOW_INFERENCE_THREADS", "1")  # set by hand: wins over the share
    assert load_environment().lane_threads() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setenv("QCFLOW_INFERENCE_LANES", "4")
    monkeypatch.delenv("QCFLOW_INFERENCE_THREADS")
    assert load_environment().lane_threads() == 1  # never none


@pytest.mark.parametrize("value", ["many", "0"])
def test_a_bad_lane_count_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("QCFLOW_INFERENCE_LANES", value)
    with pytest.raises(ConfigError, match=rf"QCFLOW_INFERENCE_LANES: .*\(got '{value}'\)"):
        load_environment()
