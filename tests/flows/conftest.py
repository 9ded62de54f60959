"""Fixtures for the orchestration tests: an installation served by a real ``qcflow serve``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pipeline.fitting import register_model_dir
from pipeline.inspection import Workspace, open_workspace
from tests.conftest import TEST_SIMULATION, write_line_config

SERVED_CRON = "0 3 * * *"  # never due while the tests run: the only runs are the ones they trigger
SERVE_STARTUP_S = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def line_config(
    config_dir: Path, source: str, *, cron: str | None = None, model: str = "test-anomaly"
) -> Path:
    """The test line of ``tests/conftest.py``, optionally on a cron schedule; returns the line file."""
    write_line_config(config_dir, source, model=model)
    path = config_dir / "lines" / "test.yaml"
    if cron is not None:
        text = path.read_text().replace("{interval_seconds: 30}", f"{{cron: '{cron}'}}")
        path.write_text(text)
    return path


@dataclass
class Served:
    ws: Workspace
    process: subprocess.Popen[bytes]
    ui_url: str
    metrics_url: str
    log_path: Path

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _wait_until_serving(served: Served) -> None:
    deadline = time.monotonic() + SERVE_STARTUP_S
    deployment_url = f"{served.api_url}/deployments/name/inspect-line/test"
    while not _answers(deployment_url):
        if served.process.poll() is not None:
            pytest.fail(f"qcflow serve exited with {served.process.returncode}:\n{served.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"qcflow serve not up after {SERVE_STARTUP_S:.0f}s:\n{served.log()}")
        time.sleep(0.5)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, anomaly_model_dir: Path) -> Iterator[Served]:
    """``qcflow serve`` on loopback ports, with a temporary PREFECT_HOME and data folder."""
    root = tmp_path_factory.mktemp("served")
    config_dir = root / "config"
    line_config(config_dir, TEST_SIMULATION, cron=SERVED_CRON)
    ws = open_workspace(root / "data", config_dir)
    register_model_dir(ws, anomaly_model_dir)
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QCFLOW_"))}
    env |= {"PREFECT_HOME": str(root / "prefect-home"), "PREFECT_LOGGING_LEVEL": "INFO"}
    log_path = root / "serve.log"
    command = [str(Path(sys.executable).parent / "qcflow"), "serve", "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), "--data-dir", str(ws.data_dir)]
    command += ["--config-dir", str(config_dir)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    result = Served(ws, process, f"http://127.0.0.1:{port}", metrics_url, log_path)
    try:
        _wait_until_serving(result)
        yield result
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        ws.engine.dispose()
