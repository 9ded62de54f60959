"""Read models for the dashboard pages, all through SQLAlchemy with bounded result sizes.

The feed pages by keyset (``before`` an inspection id) rather than OFFSET, so
page N costs the same as page 1 however many inspections the line has.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from pipeline.config import LineConfig
from pipeline.db.models import FindingRow, FrameRow, InspectionReviewRow, InspectionRow, utcnow
from pipeline.types import Decision, FindingKind

SHIFT = timedelta(hours=8)
HOUR = timedelta(hours=1)
LIVE_FOR = timedelta(minutes=5)  # a line with a frame newer than this is shown as running


@dataclass(frozen=True, slots=True)
class WindowCounts:
    total: int = 0
    passed: int = 0
    failed: int = 0
    review: int = 0

    @property
    def yield_percent(self) -> float | None:
        return None if self.total == 0 else 100.0 * self.passed / self.total


@dataclass(frozen=True, slots=True)
class LineStatus:
    line_id: str
    name: str
    specialists: dict[str, bool]
    last_frame_at: datetime | None
    last_hour: WindowCounts
    shift: WindowCounts

    @property
    def running(self) -> bool:
        return self.last_frame_at is not None and utcnow() - self.last_frame_at < LIVE_FOR


def specialist_switches(line: LineConfig) -> dict[str, bool]:
    """Every specialist a line may use and whether it is on (one left out of the file is off)."""
    names = type(line.specialists).model_fields
    return {name: _enabled(getattr(line.specialists, name)) for name in names}


def _enabled(settings: object) -> bool:
    return settings is not None and bool(getattr(settings, "enabled", False))


def _counts(by_decision: dict[str, int]) -> WindowCounts:
    return WindowCounts(
        total=sum(by_decision.values()),
        passed=by_decision.get(Decision.PASS.value, 0),
        failed=by_decision.get(Decision.FAIL.value, 0),
        review=by_decision.get(Decision.REVIEW.value, 0),
    )


def _hour_and_shift_counts(
    session: Session, line_id: str, now: datetime
) -> tuple[WindowCounts, WindowCounts]:
    """Decision counts over the last hour and the last shift, in one pass over the shift's frames."""
    in_last_hour = case((FrameRow.captured_at >= now - HOUR, 1), else_=0)
    stmt = (
        select(InspectionRow.decision, func.sum(in_last_hour), func.count())
        .join(FrameRow, InspectionRow.frame_id == FrameRow.id)
        .where(FrameRow.line_id == line_id, FrameRow.captured_at >= now - SHIFT)
        .group_by(InspectionRow.decision)
    )
    rows = session.execute(stmt).tuples().all()
    hour = {decision: int(n_hour or 0) for decision, n_hour, _ in rows}
    shift = {decision: int(n_shift) for decision, _, n_shift in rows}
    return _counts(hour), _counts(shift)


def line_statuses(session: Session, lines: list[LineConfig]) -> list[LineStatus]:
    now = utcnow()
    statuses = []
    for line in lines:
        last = session.scalar(select(func.max(FrameRow.captured_at)).where(FrameRow.line_id == line.line_id))
        last_hour, shift = _hour_and_shift_counts(session, line.line_id, now)
        statuses.append(
            LineStatus(
                line_id=line.line_id,
                name=line.name,
                specialists=specialist_switches(line),
                last_frame_at=last,
                last_hour=last_hour,
                shift=shift,
            )
        )
    return statuses


@dataclass(frozen=True, slots=True)
class FindingView:
    kind: str
    specialist: str
    score: float | None
    label: str | None
    text: str | None
    box: tuple[int, int, int, int] | None


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: int
    line_id: str
    camera_id: str
    captured_at: datetime
    frame_sha256: str
    width: int
    height: int
    decision: Decision
    decision_in_force: Decision
    reason: str
    anomaly_score: float | None
    heatmap_sha256: str | None
    image_pruned_at: datetime | None  # when image retention removed the frame's picture and heat map
    findings: list[FindingView] = field(default_factory=list)

    @property
    def regions(self) -> list[FindingView]:
        return [f for f in self.findings if f.box is not None]

    @property
    def anomaly_regions(self) -> list[FindingView]:
        return [f for f in self.regions if f.kind == FindingKind.ANOMALY.value]

    @property
    def other_labels(self) -> list[str]:
        """Labels of the other specialists (text, defect type, errors) for the feed's summary."""
        return [
            f.label or f.kind
            for f in self.findings
            if f.kind not in (FindingKind.ANOMALY.value, FindingKind.DESCRIPTION.value)
        ]

    @property
    def descriptions(self) -> list[str]:
        """The grounded sentence, and a captioning model's own words marked as such."""
        return [
            f"Caption (a captioning model's words, not checked against the findings): {f.text}"
            if f.label == "caption"
            else f.text
            for f in self.findings
            if f.kind == FindingKind.DESCRIPTION.value and f.text
        ]


@dataclass(frozen=True, slots=True)
class FeedFilters:
    decision: Decision | None = None
    camera_id: str | None = None
    min_score: float | None = None
    before: int | None = None  # keyset: only inspections with a smaller id


def _latest_review_decision():  # type: ignore[no-untyped-def]
    """Correlated subquery: the newest override's decision for the outer inspection, if any."""
    return (
        select(InspectionReviewRow.decision)
        .where(InspectionReviewRow.inspection_id == InspectionRow.id)
        .order_by(InspectionReviewRow.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _feed_select() -> Select:  # type: ignore[type-arg]
    return select(InspectionRow, FrameRow, _latest_review_decision()).join(
        FrameRow, InspectionRow.frame_id == FrameRow.id
    )


def _findings_by_inspection(session: Session, ids: list[int]) -> dict[int, list[FindingView]]:
    found: defaultdict[int, list[FindingView]] = defaultdict(list)
    if not ids:
        return found
    stmt = select(FindingRow).where(FindingRow.inspection_id.in_(ids)).order_by(FindingRow.id)
    rows = session.scalars(stmt)
    for r in rows:
        box = None
        if r.box_x is not None and r.box_y is not None and r.box_w is not None and r.box_h is not None:
            box = (r.box_x, r.box_y, r.box_w, r.box_h)
        found[r.inspection_id].append(FindingView(r.kind, r.specialist, r.score, r.label, r.text, box))
    return found


def _items(session: Session, rows: list[tuple[InspectionRow, FrameRow, str | None]]) -> list[FeedItem]:
    findings = _findings_by_inspection(session, [i.id for i, _, _ in rows])
    return [
        FeedItem(
            id=i.id,
            line_id=f.line_id,
            camera_id=f.camera_id,
            captured_at=f.captured_at,
            frame_sha256=f.sha256,
            width=f.width,
            height=f.height,
            decision=Decision(i.decision),
            decision_in_force=Decision(override or i.decision),
            reason=i.reason,
            anomaly_score=i.anomaly_score,
            heatmap_sha256=i.heatmap_sha256,
            image_pruned_at=f.image_pruned_at,
            findings=findings.get(i.id, []),
        )
        for i, f, override in rows
    ]


def feed_page(session: Session, line_id: str, filters: FeedFilters, page_size: int) -> list[FeedItem]:
    """One page of a line's inspections, newest first."""
    stmt = _feed_select().where(FrameRow.line_id == line_id)
    if filters.decision is not None:
        stmt = stmt.where(InspectionRow.decision == filters.decision.value)
    if filters.camera_id:
        stmt = stmt.where(FrameRow.camera_id == filters.camera_id)
    if filters.min_score is not None:
        stmt = stmt.where(InspectionRow.anomaly_score >= filters.min_score)
    if filters.before is not None:
        stmt = stmt.where(InspectionRow.id < filters.before)
    stmt = stmt.order_by(InspectionRow.id.desc()).limit(page_size)
    return _items(session, list(session.execute(stmt).tuples()))


def inspection_item(session: Session, inspection_id: int) -> FeedItem | None:
    rows = list(session.execute(_feed_select().where(InspectionRow.id == inspection_id)).tuples())
    return _items(session, rows)[0] if rows else None


def inspection_items(session: Session, ids: list[int]) -> list[FeedItem]:
    """Items for the given ids, in the given order (the review queue's order)."""
    rows = session.execute(_feed_select().where(InspectionRow.id.in_(ids))).tuples()
    by_id = {item.id: item for item in _items(session, list(rows))}
    return [by_id[i] for i in ids if i in by_id]
