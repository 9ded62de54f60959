"""Accuracy reports: the list and one report's figures."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from dashboard.deps import DbSession, Operator, render
from pipeline.db.models import ReportRow, SuiteRow

router = APIRouter(tags=["reports"])


@router.get("/reports")
def reports_page(request: Request, user: Operator, session: DbSession) -> Response:
    rows = session.execute(
        select(ReportRow, SuiteRow.name)
        .join(SuiteRow, ReportRow.suite_id == SuiteRow.id)
        .order_by(ReportRow.created_at.desc())
        .limit(200)
    ).tuples()
    return render(request, "reports.html", {"user": user, "reports": list(rows)})


@router.get("/reports/{report_id}")
def report_page(request: Request, user: Operator, session: DbSession, report_id: int) -> Response:
    row = session.execute(
        select(ReportRow, SuiteRow.name)
        .join(SuiteRow, ReportRow.suite_id == SuiteRow.id)
        .where(ReportRow.id == report_id)
    ).first()
    if row is None:
        raise HTTPException(status_code=404, detail=f"no report with id {report_id}")
    report, suite_name = row
    return render(request, "report.html", {"user": user, "report": report, "suite_name": suite_name})
