"""`qcflow serve` for real: a Prefect server on loopback, the test line deployed, a run triggered."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipeline.db import repository as repo
from tests.flows.conftest import SERVED_CRON, Served

pytestmark = pytest.mark.slow


@pytest.fixture
def api(served: Served) -> Iterator[None]:
    with temporary_settings(updates={PREFECT_API_URL: served.api_url}):
        yield


def test_a_triggered_run_of_the_line_deployment_logs_its_frames(served: Served, api: None) -> None:
    flow_run = run_deployment("inspect-line/test", parameters={"max_frames": 6}, timeout=300)
    assert isinstance(flow_run, FlowRun)  # run_deployment is sync when called from sync code
    assert flow_run.state is not None and flow_run.state.is_completed(), (flow_run.state, served.log())
    with served.ws.session() as session:
        logged = repo.recent_inspections(session, "test", limit=50)
    assert len(logged) == 6
    assert {r.flow_run_id for r in logged} == {str(flow_run.id)}
    metrics = httpx.get(served.metrics_url, timeout=5).text  # summed over the flow-run processes
    assert 'qcflow_frames_inspected_total{camera="cam1",line="test"} 6.0' in metrics


def test_deployments_follow_the_configuration(served: Served, api: None) -> None:
    with get_client(sync_client=True) as client:
        line = client.read_deployment_by_name("inspect-line/test")
        train = client.read_deployment_by_name("train-model/default")
    assert len(line.schedules) == 1
    schedule = line.schedules[0].schedule
    assert isinstance(schedule, CronSchedule) and schedule.cron == SERVED_CRON
    assert line.global_concurrency_limit is not None and line.global_concurrency_limit.limit == 1
    assert line.parameters["line_id"] == "test"
    assert not train.schedules  # training is started by a person (or an automation), not a clock


def test_sigterm_stops_everything_cleanly(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    try:
        code = served.process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"qcflow serve ignored SIGTERM:\n{served.log()}")
    assert code == 0, served.log()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{served.api_url}/health", timeout=2)  # the Prefect server went with it
