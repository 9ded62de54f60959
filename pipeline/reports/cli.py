"""``qcflow suite ...`` and ``qcflow report``: build suites, run reports, apply the gate.

Registered on the main app by ``pipeline.cli`` through ``register_report_commands``, which
wraps each command in the app's error handling (QCError -> one line, exit 2), as
``pipeline.generate_cli`` does. Report building (matplotlib, the model runtime) is imported
inside the command, so ``qcflow --help`` stays quick.
"""

from __future__ import annotations

import enum
import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.console import console, print_table
from pipeline.db import repository as repo
from pipeline.inspection import Workspace, open_workspace
from pipeline.reports import suites
from pipeline.reports.history import list_reports
from pipeline.specialists import AnomalyScorer, anomaly_scorer

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="data folder (default $QCFLOW_HOME or ./qcflow-data)")
]
suite_app: typer.Typer = typer.Typer(help="Test suites that accuracy reports run on.", no_args_is_help=True)


class SyntheticSelection(enum.StrEnum):
    # The only selection there is: pending or rejected images can never join a suite.
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class _Sources:
    """Where the items of ``suite create`` / ``suite add`` come from (any combination)."""

    data: Path | None
    synthetic: SyntheticSelection | None
    defect_class: str | None
    from_inspections: bool
    line: str | None
    since: datetime | None


DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="MVTec-layout folder, or a CSV manifest: path,label,defect_class,mask"),
]
SyntheticOption = Annotated[
    SyntheticSelection | None, typer.Option("--synthetic", help="add synthetic images (approved ones only)")
]
DefectClassOption = Annotated[
    str | None, typer.Option("--defect-class", help="with --synthetic: only this defect class")
]
FromInspectionsOption = Annotated[
    bool,
    typer.Option("--from-inspections", help="inspections whose decision a person confirmed or overrode"),
]
LineOption = Annotated[str | None, typer.Option("--line", help="with --from-inspections: line id")]
SinceOption = Annotated[
    datetime | None, typer.Option("--since", help="with --from-inspections: inspected since (UTC)")
]


def _items(ws: Workspace, source: _Sources) -> list[suites.SuiteItem]:
    items = suites.items_from_data(ws.store, source.data) if source.data is not None else []
    with ws.session() as session:
        if source.synthetic is not None:
            items += suites.approved_synthetic_items(session, source.defect_class)
        if source.from_inspections:
            if source.line is None or source.since is None:
                raise typer.BadParameter("--from-inspections needs --line and --since")
            since = source.since if source.since.tzinfo else source.since.replace(tzinfo=UTC)
            items += suites.items_from_inspections(session, ws.store, source.line, since)
    if not items:
        raise typer.BadParameter(
            "nothing to add: give --data DIR|CSV, --synthetic approved or --from-inspections --line --since "
            "(or the selection is empty)"
        )
    return items


def _print_suite(suite: suites.Suite, verb: str) -> None:
    n_defect = sum(i.is_defect for i in suite.items)
    n_synthetic = sum(i.is_synthetic for i in suite.items)
    console.print(
        f"{verb} suite [cyan]{suite.name}[/]: {len(suite.items)} items ({len(suite.items) - n_defect} good, "
        f"{n_defect} defective, {n_synthetic} synthetic), digest {suite.digest}"
    )


@suite_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="suite name")],
    data: DataOption = None,
    synthetic: SyntheticOption = None,
    defect_class: DefectClassOption = None,
    from_inspections: FromInspectionsOption = False,
    line: LineOption = None,
    since: SinceOption = None,
    data_dir: DataDir = None,
) -> None:
    """Create a suite; its images are copied into the data folder's store."""
    ws = open_workspace(data_dir)
    items = _items(ws, _Sources(data, synthetic, defect_class, from_inspections, line, since))
    with ws.session() as session, session.begin():
        _print_suite(suites.create_suite(session, name, items), "created")


@suite_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="suite name")],
    data: DataOption = None,
    synthetic: SyntheticOption = None,
    defect_class: DefectClassOption = None,
    from_inspections: FromInspectionsOption = False,
    line: LineOption = None,
    since: SinceOption = None,
    data_dir: DataDir = None,
) -> None:
    """Add items to a suite (images already in it are skipped)."""
    ws = open_workspace(data_dir)
    items = _items(ws, _Sources(data, synthetic, defect_class, from_inspections, line, since))
    with ws.session() as session, session.begin():
        _print_suite(suites.add_items(session, name, items), "updated")


@suite_app.command("list")
def list_(data_dir: DataDir = None) -> None:
    """Suites and their sizes."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        summaries = suites.list_suites(session)
    table = Table("suite", "items")
    for s in summaries:
        table.add_row(s.name, str(s.n_items))
    print_table(table)


@suite_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="suite name")],
    model: Annotated[str | None, typer.Option("--model", help="only this model")] = None,
    data_dir: DataDir = None,
) -> None:
    """Reports on a suite over time, oldest first: drift and regressions show here."""
    ws = open_workspace(data_dir)
    with ws.session() as session:
        records = list_reports(session, suite_name=name, model_name=model)
    table = Table(
        "id", "created", "by", "model", "version", "suite digest", "AUROC", "escape", "false reject", "gate"
    )
    for r in records:
        m = r.metrics
        table.add_row(
            str(r.id),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            r.created_by,
            r.model_name,
            r.model_version,
            r.suite_digest[:12],
            _fmt(m.get("image_auroc")),
            _fmt(m.get("escape_rate")),
            _fmt(m.get("false_reject_rate")),
            {True: "passed", False: "FAILED", None: "—"}[m.get("gate_passed")],
        )
    print_table(table)
    console.print(f"{len(records)} report(s) on suite {name!r}" + (f" by model {model!r}" if model else ""))


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def report(
    suite: Annotated[str, typer.Option("--suite", help="suite name")],
    model: Annotated[str, typer.Option("--model", help="registered model name (active version)")],
    out: Annotated[Path, typer.Option("--out", help="folder for report.json and report.html")],
    compare: Annotated[str | None, typer.Option("--compare", help="second model, side by side")] = None,
    fail_under: Annotated[
        str | None,
        typer.Option(
            "--fail-under", help="bounds, e.g. image_auroc=0.97,escape_rate<=0.01 ('=': at least as good)"
        ),
    ] = None,
    created_by: Annotated[
        str | None, typer.Option("--by", help="who runs the report (default: login name)")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Accuracy report of MODEL on SUITE; exits 1 when a --fail-under bound is missed."""
    from pipeline.reports.build import ModelUnderTest, build_report
    from pipeline.reports.gate import parse_bounds

    if compare == model:
        raise typer.BadParameter(f"--compare {compare}: name a different model than --model")
    bounds = parse_bounds(fail_under or "")  # before any work: a typo must not cost a full scoring run
    ws = open_workspace(data_dir)
    names = [model] if compare is None else [model, compare]
    models = [ModelUnderTest(n, load_scorer(ws, n)) for n in names]
    with console.status(f"scoring suite {suite} with {', '.join(names)}"):
        built = build_report(
            ws, suite, models, out, created_by=created_by or getpass.getuser(), bounds=bounds
        )
    for result in built.results:
        flat = result.headline.flat()
        console.print(
            f"[cyan]{result.scored.model_name} {result.scored.model_version}[/]: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in flat.items())
        )
    console.print(
        f"scoring {built.scoring_seconds:.1f}s, analysis {built.analysis_seconds:.1f}s; "
        f"wrote {built.json_path} and {built.html_path}"
    )
    if built.gate is not None:
        for check in built.gate.checks:
            console.print(check.describe())
        if not built.gate.passed:
            missed = "; ".join(str(c.bound) for c in built.gate.missed)
            console.print(f"[bold red]gate failed:[/] {missed}")
            raise typer.Exit(1)


def load_scorer(ws: Workspace, name: str) -> AnomalyScorer:
    """The active version of a registered anomaly model, ready to score images."""
    with ws.session() as session:
        record = repo.get_active_model(session, name)
    return anomaly_scorer(Path(record.path))


def register_report_commands(
    app: typer.Typer, reports_errors: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """Add ``suite ...`` and ``report`` to the qcflow app, each wrapped by ``reports_errors``."""
    for command in suite_app.registered_commands:
        if command.callback is not None:
            command.callback = reports_errors(command.callback)
    app.add_typer(suite_app, name="suite")
    app.command("report")(reports_errors(report))
