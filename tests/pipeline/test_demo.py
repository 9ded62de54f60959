"""The main job's model: fitted on the simulated line with the line's training policy, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.demo import ensure_demo_model, summarise
from pipeline.errors import ConfigError
from pipeline.inspection import open_workspace
from tests.conftest import TEST_SIMULATION, write_line_config


def _policy_line(config_dir: Path, source: str) -> Path:
    write_line_config(config_dir, source, model="demo-test")
    line_file = config_dir / "lines" / "test.yaml"
    line_file.write_text(
        line_file.read_text().replace("model: demo-test", "model: demo-test, bank_size: 200, blur_sigma: 6")
    )
    return config_dir


def test_the_demo_fits_once_with_the_lines_training_policy(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "data", _policy_line(tmp_path / "config", TEST_SIMULATION))
    line = ws.line("test")
    record = ensure_demo_model(ws, line, Console(quiet=True))
    card = json.loads((Path(record.path) / "model.json").read_text())
    assert card["training"]["bank_size"] == 200
    assert card["training"]["settings"]["blur_sigma"] == 6.0
    assert ensure_demo_model(ws, line, Console(quiet=True)).version == record.version  # not refitted


def test_the_demo_needs_a_simulated_camera_to_fit_on(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    ws = open_workspace(tmp_path / "data", _policy_line(tmp_path / "config", str(tmp_path / "frames")))
    with pytest.raises(ConfigError, match="the demo fits its model on a sim:// camera"):
        ensure_demo_model(ws, ws.line("test"), Console(quiet=True))


def test_the_summary_scores_the_run_and_says_how_to_look_at_it(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "data", _policy_line(tmp_path / "config", TEST_SIMULATION))
    console = Console(record=True, width=400)
    outcome = {
        "frames": 4,
        "seconds": 2.0,
        "wall_seconds": 9.5,
        "decisions": {"PASS": 2, "FAIL": 1, "REVIEW": 1},
        # "" is a good part; one good-defective pair is out of order
        "scored_truth": [(0.1, ""), (0.7, "crack"), (0.4, ""), (0.3, "pit")],
    }
    summarise(ws, ws.line("test"), outcome, console)
    text = console.export_text()
    assert "4 frames inspected in 2.0s (2.0 frames/s) — PASS 2  FAIL 1  REVIEW 1" in text
    assert "the whole run took 9.5s: Prefect's start-up" in text
    assert "image AUROC 0.750 (2 defective of 4)" in text
    where = f"--data-dir {ws.data_dir}"
    assert f"qcflow status --line test {where}" in text
    assert f"qcflow users add me --role admin {where} && qcflow dashboard {where}" in text
    assert "http://127.0.0.1:8000" in text
