"""Reports in the database: what was measured, on which suite (by digest), by whom, when.

Listing them in time order is how drift or a regression becomes visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.db.models import ReportRow, SuiteRow


@dataclass(frozen=True, slots=True)
class ReportRecord:
    id: int
    suite_name: str
    suite_digest: str
    model_name: str
    model_version: str
    metrics: dict[str, Any]
    created_by: str
    created_at: datetime
    path: str


def record_report(
    session: Session,
    *,
    suite_id: int,
    suite_digest: str,
    model_name: str,
    model_version: str,
    metrics: dict[str, Any],
    created_by: str,
    path: str,
) -> int:
    row = ReportRow(
        suite_id=suite_id,
        suite_digest=suite_digest,
        model_name=model_name,
        model_version=model_version,
        metrics=metrics,
        created_by=created_by,
        path=path,
    )
    session.add(row)
    session.flush()
    return row.id


def list_reports(
    session: Session, *, suite_name: str | None = None, model_name: str | None = None
) -> list[ReportRecord]:
    """Reports oldest first, optionally of one suite and/or one model."""
    stmt = (
        select(ReportRow, SuiteRow.name)
        .join(SuiteRow, ReportRow.suite_id == SuiteRow.id)
        .order_by(ReportRow.created_at, ReportRow.id)
    )
    if suite_name is not None:
        stmt = stmt.where(SuiteRow.name == suite_name)
    if model_name is not None:
        stmt = stmt.where(ReportRow.model_name == model_name)
    return [
        ReportRecord(
            r.id,
            name,
            r.suite_digest,
            r.model_name,
            r.model_version,
            dict(r.metrics),
            r.created_by,
            r.created_at,
            r.path,
        )
        for r, name in session.execute(stmt).tuples()
    ]
