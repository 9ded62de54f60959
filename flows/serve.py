"""Deployments built from the configuration, and what ``qcflow serve`` / ``qcflow worker`` run.

One ``inspect-line/<line_id>`` deployment per ``config/lines/*.yaml`` on that line's cron or
interval, with a concurrency limit of one run per line (two runs of a line would pull from the
same watermark), plus ``train-model/default``, ``prune-images/default`` on the retention schedule
when ``retention.keep_passed_images_days`` is set, and, when their flows exist,
``build-report/default`` and ``generate-defects/default`` (the latter only with ``generators.enabled``).

Lines are checked before anything starts, so a bad file stops ``qcflow serve`` with the file and
field at fault rather than failing runs later.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import Flow, serve
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from pydantic import ValidationError

from flows.inspect_line import inspect_line
from flows.prune_images import prune_images
from flows.train_model import train_model
from pipeline.config import LineConfig, Schedule, lines_dir, load_app_config, load_line_config
from pipeline.db import repository as repo
from pipeline.errors import ConfigError, ModelNotFound, SourceUnavailable
from pipeline.inspection import Workspace
from pipeline.sources import open_source

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# flows written by other parts of the project: deployed when their module exists
OPTIONAL_FLOWS = {"build_report": "build-report", "generate_defects": "generate-defects"}


def check_line(ws: Workspace, path: Path) -> LineConfig:
    """Load a line file and check what only shows at run time: cron syntax, sources, models."""
    line = load_line_config(path)
    if line.schedule.cron is not None:
        try:
            CronSchedule(cron=line.schedule.cron)
        except ValidationError as exc:
            raise ConfigError(f"{path}: schedule.cron: invalid cron {line.schedule.cron!r}") from exc
    for index, camera in enumerate(line.cameras):
        try:
            open_source(camera.source, line.line_id, camera.camera_id)
        except (ConfigError, SourceUnavailable) as exc:
            raise ConfigError(f"{path}: cameras.{index}.source: {exc}") from exc
    anomaly = line.specialists.anomaly
    if anomaly.enabled:
        with ws.session() as session:
            try:
                repo.get_active_model(session, anomaly.model)
            except ModelNotFound as exc:
                raise ConfigError(f"{path}: specialists.anomaly.model: {exc}") from exc
    return line


def schedule_of(schedule: Schedule) -> dict[str, Any]:
    """A configured schedule as ``to_deployment`` keyword arguments."""
    if schedule.cron is not None:
        return {"cron": schedule.cron}
    return {"interval": schedule.interval_seconds}


def _optional_flow(module_name: str, flow_name: str) -> Flow[..., Any] | None:
    """The flow named ``flow_name`` in ``flows/<module_name>.py``, if that file exists."""
    if importlib.util.find_spec(f"flows.{module_name}") is None:
        return None
    module = importlib.import_module(f"flows.{module_name}")
    return next((v for v in vars(module).values() if isinstance(v, Flow) and v.name == flow_name), None)


def _accepted(flow: Flow[..., Any], values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that ``flow`` takes as parameters."""
    return {k: v for k, v in values.items() if k in inspect.signature(flow.fn).parameters}


def _deployment(flow: Flow[..., Any], name: str, **options: Any) -> RunnerDeployment:
    # module entrypoints: runs load the installed package, whatever directory serve started in
    deployment = flow.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH, **options)
    assert isinstance(deployment, RunnerDeployment)  # to_deployment is sync when called from sync code
    return deployment


def build_deployments(ws: Workspace) -> list[RunnerDeployment]:
    """Every deployment the installation runs; ``ConfigError`` names the file and field at fault."""
    workspace_args = {"data_dir": str(ws.data_dir), "config_dir": str(ws.config_dir)}
    lines = [check_line(ws, path) for path in sorted(lines_dir(ws.config_dir).glob("*.yaml"))]
    if not lines:
        raise ConfigError(f"{lines_dir(ws.config_dir)}: no line configurations (*.yaml) to deploy")
    deployments = [
        _deployment(
            inspect_line,
            line.line_id,
            parameters={"line_id": line.line_id, **workspace_args},
            concurrency_limit=1,
            paused=False,
            tags=[f"line:{line.line_id}"],
            description=f"inspect new frames of {line.name}, at most {line.batch_size} per camera",
            **schedule_of(line.schedule),
        )
        for line in lines
    ]
    deployments.append(_deployment(train_model, "default", parameters=workspace_args))
    app_config = load_app_config(ws.config_dir)
    retention = app_config.retention
    if retention.keep_passed_images_days is not None:
        days = retention.keep_passed_images_days
        deployments.append(
            _deployment(
                prune_images,
                "default",
                parameters=workspace_args,
                description=f"remove the stored pictures of passed frames older than {days:g} days",
                **schedule_of(retention.schedule),
            )
        )
    generation_on = app_config.generators.enabled
    for module_name, flow_name in OPTIONAL_FLOWS.items():
        if module_name == "generate_defects" and not generation_on:
            continue
        optional = _optional_flow(module_name, flow_name)
        if optional is None:
            log.info("no %s flow in flows/%s.py: not deployed", flow_name, module_name)
            continue
        deployments.append(_deployment(optional, "default", parameters=_accepted(optional, workspace_args)))
    return deployments


def _ensure_process_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))


def deploy_to_pool(deployments: list[RunnerDeployment], pool: str) -> list[str]:
    """Register the deployments on a process work pool (created if missing) for ``qcflow worker``
    processes, on this or other machines where the project is installed."""
    _ensure_process_pool(pool)
    names = []
    for deployment in deployments:
        deployment.apply(work_pool_name=pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def serve_installation(
    ws: Workspace,
    *,
    api_url: str | None,
    host: str,
    port: int,
    metrics_port: int,
    pool: str | None,
    announce: Callable[[str], None],
) -> None:
    """Everything production needs on one machine, until Ctrl-C / SIGTERM: a Prefect server (unless
    ``api_url`` names one), the deployments (run here, or on ``pool``'s workers), the Prometheus
    exporter and the line-event sender that drains what finished runs left in the outbox."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.prefect_server import LocalPrefectServer, check_reachable
    from pipeline.events import publisher_from_settings
    from pipeline.metrics_exporter import enable_multiprocess, start_exporter

    deployments = build_deployments(ws)  # a bad config stops us before anything starts
    _interrupt_on_sigterm()
    with contextlib.ExitStack() as stack:
        if api_url is None:
            server = stack.enter_context(LocalPrefectServer(ws.data_dir / "prefect", host, port))
            api_url = server.api_url
            announce(f"Prefect UI: {server.ui_url}  (API {api_url}, log {server.log_path})")
        else:
            check_reachable(api_url)
        os.environ["PREFECT_API_URL"] = api_url  # inherited by the flow runs this process starts
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        enable_multiprocess(ws.data_dir / "metrics")  # where the flow runs started from here count
        start_exporter(metrics_port, host)
        announce(f"Prometheus metrics: http://{host}:{metrics_port}/metrics")
        publisher = publisher_from_settings(load_app_config(ws.config_dir).events, ws.data_dir)
        if publisher is not None:
            stack.callback(publisher.close)
            announce(f"line events: {publisher.host}:{publisher.port}, {publisher.pending()} queued")
        names = [f"{d.flow_name}/{d.name}" for d in deployments]
        if pool is None:
            announce(f"serving {', '.join(names)}; Ctrl-C to stop")
            serve(*deployments, print_starting_message=False)
        else:
            deploy_to_pool(deployments, pool)
            announce(
                f"deployed {', '.join(names)} to work pool {pool!r}; start workers with "
                f"`qcflow worker --pool {pool}`; Ctrl-C to stop"
            )
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM stop us like Ctrl-C, so the clean-up runs (the child server is stopped) even
    before Prefect's runner installs its own graceful handler."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_worker(pool: str, api_url: str, on_start: Callable[[str], None]) -> None:
    """A process worker on ``pool`` until Ctrl-C / SIGTERM; fails fast when no server answers."""
    import anyio
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.workers.process import ProcessWorker

    from flows.prefect_server import check_reachable

    check_reachable(api_url)
    on_start(f"worker on pool {pool!r} polling {api_url}")

    async def work() -> None:
        async with ProcessWorker(work_pool_name=pool) as worker:
            await worker.start()

    _interrupt_on_sigterm()
    os.environ["PREFECT_API_URL"] = api_url  # inherited by the flow runs the worker starts
    with temporary_settings(updates={PREFECT_API_URL: api_url}), contextlib.suppress(KeyboardInterrupt):
        anyio.run(work)
