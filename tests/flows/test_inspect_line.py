"""The inspect_line flow: one real Prefect run (test harness) writing to the database."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.inspect_line import inspect_line
from pipeline.db import repository as repo
from pipeline.inspection import Workspace


@pytest.fixture(scope="module")
def prefect_harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_run_logs_frames_with_its_run_id(prefect_harness: None, workspace: Workspace) -> None:
    args = {
        "data_dir": str(workspace.data_dir),
        "config_dir": str(workspace.config_dir),
        "database_url": workspace.database_url,
    }
    outcome = inspect_line("test", max_frames=8, **args)
    assert outcome["frames"] == outcome["new_inspections"] == 8
    with workspace.session() as session:
        recent = repo.recent_inspections(session, "test", limit=10)
    assert len(recent) == 8
    run_ids = {r.flow_run_id for r in recent}
    assert len(run_ids) == 1 and None not in run_ids
    again = inspect_line("test", max_frames=5, **args)
    assert again["new_inspections"] == 5
