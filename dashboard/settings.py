"""Dashboard settings: from the environment (``QCFLOW_DASHBOARD_*``), secrets included."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILE = "dashboard_secret"


class DashboardEnvironment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QCFLOW_DASHBOARD_", extra="ignore")

    secret: str | None = None
    # Secure cookies are sent over HTTPS only: turn this on wherever TLS terminates in front of us.
    https_only: bool = False
    session_max_age_seconds: int = 8 * 3600  # one shift
    login_max_failures: int = 5
    login_window_seconds: int = 300
    feed_page_size: int = 50


def session_secret(env: DashboardEnvironment, data_dir: Path) -> str:
    """The session signing key: from the environment, else one generated once and kept in the data dir.

    Persisting it means a restart does not log everybody out; the file is private to the owner.
    """
    if env.secret:
        return env.secret
    path = data_dir / SECRET_FILE
    if path.is_file():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret
