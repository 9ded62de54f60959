"""Deployments built from the configuration, and bad input refused at start-up (no server needed)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from typer.testing import CliRunner

from flows.serve import build_deployments, check_line
from pipeline.cli import app
from pipeline.errors import ConfigError
from pipeline.inspection import Workspace
from tests.conftest import TEST_SIMULATION
from tests.flows.conftest import free_port, line_config


def test_one_scheduled_deployment_per_line_limited_to_one_run(workspace: Workspace) -> None:
    deployments = {f"{d.flow_name}/{d.name}": d for d in build_deployments(workspace)}
    assert {"inspect-line/test", "train-model/default", "build-report/default"} <= set(deployments)
    assert "generate-defects/default" not in deployments  # generation is off unless configured on
    line = deployments["inspect-line/test"]
    assert line.schedules is not None
    (schedule,) = line.schedules
    assert isinstance(schedule.schedule, IntervalSchedule)
    assert schedule.schedule.interval == timedelta(seconds=30)  # as in the line file
    assert line.concurrency_limit == 1
    assert line.parameters == {
        "line_id": "test",
        "data_dir": str(workspace.data_dir),
        "config_dir": str(workspace.config_dir),
    }


def test_generation_is_deployed_only_when_enabled(workspace: Workspace) -> None:
    if importlib.util.find_spec("flows.generate_defects") is None:
        pytest.skip("flows/generate_defects.py is not in this tree")
    (workspace.config_dir / "qcflow.yaml").write_text("lines_dir: lines\ngenerators: {enabled: true}\n")
    deployments = {f"{d.flow_name}/{d.name}": d for d in build_deployments(workspace)}
    assert deployments["generate-defects/default"].parameters["data_dir"] == str(workspace.data_dir)


def test_image_retention_is_deployed_on_its_schedule_only_when_set(workspace: Workspace) -> None:
    assert "prune-images/default" not in {f"{d.flow_name}/{d.name}" for d in build_deployments(workspace)}
    (workspace.config_dir / "qcflow.yaml").write_text(
        "lines_dir: lines\nretention: {keep_passed_images_days: 30, schedule: {cron: '15 2 * * *'}}\n"
    )
    deployments = {f"{d.flow_name}/{d.name}": d for d in build_deployments(workspace)}
    prune = deployments["prune-images/default"]
    assert prune.schedules is not None
    (schedule,) = prune.schedules
    assert isinstance(schedule.schedule, CronSchedule) and schedule.schedule.cron == "15 2 * * *"
    assert prune.parameters["data_dir"] == str(workspace.data_dir)


@pytest.mark.parametrize(
    ("edit", "field", "detail"),
    [
        (dict(cron="61 * * * *"), "schedule.cron", "invalid cron '61 * * * *'"),
        (dict(source="ftp://nowhere/frames"), "cameras.0.source", "ftp://nowhere/frames"),
        (dict(model="never-registered"), "specialists.anomaly.model", "no model named 'never-registered'"),
    ],
)
def test_bad_line_config_names_file_and_field(
    workspace: Workspace, edit: dict[str, str], field: str, detail: str
) -> None:
    path = line_config(
        workspace.config_dir,
        edit.get("source", TEST_SIMULATION),
        cron=edit.get("cron"),
        model=edit.get("model", "test-anomaly"),
    )
    with pytest.raises(ConfigError) as caught:
        check_line(workspace, path)
    assert str(caught.value).startswith(f"{path}: {field}: ")
    assert detail in str(caught.value)


def test_serve_refuses_a_bad_line_before_starting_anything(workspace: Workspace, tmp_path: Path) -> None:
    line_config(workspace.config_dir, TEST_SIMULATION, cron="0 25 * * *")
    command = [str(Path(sys.executable).parent / "qcflow"), "serve", "--port", str(free_port())]
    command += ["--data-dir", str(workspace.data_dir), "--config-dir", str(workspace.config_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    # a subprocess: serve sets process-wide state (metrics mode, API URL) that must not leak into pytest
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "schedule.cron" in result.stdout and "test.yaml" in result.stdout.replace("\n", "")
    assert not (workspace.data_dir / "prefect" / "server.log").exists()  # no server was started


def test_worker_without_a_reachable_server_says_where_it_looked(workspace: Workspace) -> None:
    api_url = f"http://127.0.0.1:{free_port()}/api"
    result = CliRunner().invoke(
        app, ["worker", "--pool", "line-pool", "--api-url", api_url, "--data-dir", str(workspace.data_dir)]
    )
    assert result.exit_code == 2
    assert "no Prefect server at" in result.output and api_url in result.output.replace("\n", "")
