"""A local Prefect server as a child process, and the check that a server is reachable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.errors import QCError

STARTUP_TIMEOUT_S = 120.0  # the first start migrates the server's own database


class PrefectServerError(QCError):
    """The Prefect server could not be started or reached."""


def check_reachable(api_url: str, timeout_s: float = 5.0) -> None:
    """Raise ``PrefectServerError`` naming ``api_url`` unless its health check answers."""
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise PrefectServerError(
            f"no Prefect server at {api_url} ({type(exc).__name__}: {exc}); start one with `qcflow serve` "
            "or `prefect server start`, and set PREFECT_API_URL to its address"
        ) from exc
    if response.status_code != 200:
        raise PrefectServerError(f"Prefect server at {api_url}: health check answered {response.status_code}")


@dataclass
class LocalPrefectServer:
    """``prefect server start`` with its state (SQLite database, log) under ``home``."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 4200
    process: subprocess.Popen[bytes] | None = None

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def start(self) -> LocalPrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", self.host]
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise PrefectServerError(
                    f"Prefect server on {self.ui_url} exited with code {self.process.returncode} "
                    f"(port taken?); its log {self.log_path} ends:\n{tail}"
                )
            try:
                check_reachable(self.api_url, timeout_s=2)
                return
            except PrefectServerError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PrefectServerError(
                        f"Prefect server on {self.ui_url} not healthy after {STARTUP_TIMEOUT_S:.0f}s; "
                        f"see {self.log_path}"
                    ) from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalPrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
