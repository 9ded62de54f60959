"""Prefect flow: an accuracy report of a model on a frozen test suite (``pipeline.reports.build``).

The run ends Failed when the report misses a ``fail_under`` bound, so a scheduled or triggered
report shows a broken model in the Prefect UI as well as in the report itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.inspect_line import workspace_for
from pipeline.errors import QCError


class ReportGateMissed(QCError):
    """The report was written, but the model missed a bound it was required to meet."""


@task(persist_result=True, task_run_name="report on {suite}")
def build_report_task(
    suite: str,
    models: list[str],
    out_dir: str,
    fail_under: str | None,
    created_by: str,
    data_dir: str | None,
    database_url: str | None,
) -> dict[str, Any]:
    from pipeline.reports.build import ModelUnderTest, build_report
    from pipeline.reports.cli import load_scorer
    from pipeline.reports.gate import parse_bounds

    ws = workspace_for(data_dir, None, database_url)
    scorers = [ModelUnderTest(name, load_scorer(ws, name)) for name in models]
    built = build_report(
        ws, suite, scorers, Path(out_dir), created_by=created_by, bounds=parse_bounds(fail_under or "")
    )
    return {
        "json_path": str(built.json_path),
        "html_path": str(built.html_path),
        "report_ids": list(built.report_ids),
        "gate_missed": [str(c.bound) for c in built.gate.missed] if built.gate else [],
    }


@flow(name="build-report", log_prints=False)
def build_report(
    suite: str,
    model: str,
    compare: str | None = None,
    fail_under: str | None = None,
    created_by: str = "prefect",
    data_dir: str | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Report ``model`` (and ``compare`` side by side) on ``suite`` under the data folder's reports/."""
    ws = workspace_for(data_dir, None, database_url)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out_dir = ws.data_dir / "reports" / f"{suite}-{model}-{stamp}"
    models = [model] if compare is None else [model, compare]
    outcome = build_report_task(
        suite, models, str(out_dir), fail_under, created_by, str(ws.data_dir), database_url
    )
    if outcome["gate_missed"]:
        missed = "; ".join(outcome["gate_missed"])
        raise ReportGateMissed(f"{model} on suite {suite!r} missed {missed}; see {outcome['html_path']}")
    return outcome
