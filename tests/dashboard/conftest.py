"""Dashboard fixtures: a workspace filled with sample inspections, users of every role, a client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.settings import DashboardEnvironment
from pipeline.inspection import Workspace, open_workspace
from pipeline.users import Role, add_user
from tests.conftest import write_line_config
from tests.dashboard.sample_data import add_models_and_report, add_synthetic_images, fill_line

PASSWORD = "correct horse battery"
LINE = "test"
MODEL = "test-anomaly"
USERS = {role: f"{role.value}1" for role in Role}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Seeded:
    ws: Workspace
    inspection_ids: list[int]
    synthetic_ids: list[int]
    report_id: int


def seed_workspace(root: Path, *, parts: int = 24) -> Seeded:
    config_dir = write_line_config(root / "config", "sim://test?seed=3&size=160", line_id=LINE, model=MODEL)
    ws = open_workspace(root / "data", config_dir)
    ids = fill_line(ws, LINE, parts)
    synthetic = add_synthetic_images(ws, 3)
    report_id = add_models_and_report(ws, MODEL)
    with ws.session() as session, session.begin():
        for role, name in USERS.items():
            add_user(session, name, role, PASSWORD, created_by="test")
    return Seeded(ws, ids, synthetic, report_id)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """Read-mostly data shared by a module (seeding renders parts and hashes passwords: slow-ish)."""
    seeded = seed_workspace(tmp_path_factory.mktemp("dashboard"))
    yield seeded
    seeded.ws.engine.dispose()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Seeded]:
    """A workspace of its own, for tests that change data."""
    seeded = seed_workspace(tmp_path, parts=8)
    yield seeded
    seeded.ws.engine.dispose()


def dashboard_settings(**overrides: object) -> DashboardEnvironment:
    return DashboardEnvironment(secret="test-secret-not-for-production", **overrides)  # type: ignore[arg-type]


def make_client(ws: Workspace, **settings: object) -> TestClient:
    return TestClient(create_app(ws, dashboard_settings(**settings)), follow_redirects=False)


def csrf_of(client: TestClient, page: str = "/login") -> str:
    match = CSRF_INPUT.search(client.get(page).text)
    assert match, f"no CSRF field on {page}"
    return match.group(1)


def log_in(client: TestClient, role: Role) -> str:
    """Log in as the user of ``role``; returns the session's CSRF token."""
    response = client.post(
        "/login", data={"username": USERS[role], "password": PASSWORD, "csrf_token": csrf_of(client)}
    )
    assert response.status_code == 303, response.text
    return csrf_of(client, "/")


@pytest.fixture(scope="module")
def client_for(seeded: Seeded) -> Iterator[object]:
    """``client_for(role)``: a client logged in as that role (None: anonymous) and its CSRF token.

    One per role per module: logging in costs an argon2 verification, and the
    tests using these clients change nothing a later test depends on.
    """
    clients: dict[Role | None, tuple[TestClient, str]] = {}

    def get(role: Role | None) -> tuple[TestClient, str]:
        if role not in clients:
            client = make_client(seeded.ws)
            clients[role] = (client, log_in(client, role) if role is not None else csrf_of(client))
        return clients[role]

    yield get
    for client, _ in clients.values():
        client.close()
