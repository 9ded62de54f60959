"""The main job's model: fitted on the simulated line with the line's training policy, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.demo import ensure_demo_model
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
