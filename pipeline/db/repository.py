"""Reading and writing qcflow records.

Every function takes an explicit ``Session`` first and leaves committing to the
caller, so one unit of work (a frame and its inspection, say) commits or rolls
back together. Results are plain frozen dataclasses, never ORM rows, so callers
cannot lazily load or accidentally modify the database through them.

Writes that may race between processes (two workers inspecting the same
frame, two sources registering the same line) treat a unique-constraint
conflict as "someone else got there first", the same on SQLite and PostgreSQL:
frames and inspections, written a chunk at a time, with INSERT … ON CONFLICT
DO NOTHING (a few statements per chunk, not several per frame); the rest
insert one row inside a SAVEPOINT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy import insert as insert_rows
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.db.model_registry import (
    ModelRecord,
    activate_model,
    get_active_model,
    list_models,
    register_model,
)
from pipeline.db.models import (
    Base,
    CameraRow,
    FindingRow,
    FrameErrorRow,
    FrameRow,
    InspectionRow,
    LineRow,
    SourceWatermarkRow,
    utcnow,
)
from pipeline.errors import StorageError
from pipeline.types import Decision, Finding, FindingKind, Frame, InspectionResult, Region

T = TypeVar("T")

__all__ = [
    "InspectionRecord",
    "ModelRecord",
    "activate_model",
    "count_frame_errors",
    "decision_counts",
    "ensure_camera",
    "ensure_line",
    "get_active_model",
    "get_watermark",
    "inspection_findings",
    "list_models",
    "recent_inspections",
    "record_frame",
    "record_frame_error",
    "record_frames",
    "record_inspection",
    "record_inspections",
    "register_model",
    "set_watermark",
]


@dataclass(frozen=True, slots=True)
class InspectionRecord:
    """One stored inspection joined with the frame it judged (what the dashboard lists)."""

    id: int
    frame_id: int
    frame_sha256: str
    line_id: str
    camera_id: str
    captured_at: datetime
    source_uri: str
    store_path: str
    config_hash: str
    decision: Decision
    reason: str
    anomaly_score: float | None
    timings_ms: dict[str, float]
    providers: tuple[str, ...]
    model_versions: dict[str, str]
    flow_run_id: str | None
    heatmap_sha256: str | None
    created_at: datetime


def _insert_once(session: Session, row: Base) -> bool:
    """Insert ``row`` in a SAVEPOINT; False (and nothing written) on a unique conflict.

    The savepoint keeps the caller's transaction usable after the conflict,
    which PostgreSQL would otherwise abort entirely.
    """
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def _get_or_insert(session: Session, find: Callable[[], T | None], make: Callable[[], Base]) -> T:
    """Return ``find()``, inserting ``make()`` first if nothing is found, race-safely."""
    found = find()
    if found is not None:
        return found
    row = make()
    _insert_once(session, row)
    found = find()
    if found is None:
        raise StorageError(f"could not insert or find {type(row).__name__} {row!r}")
    return found


# --- lines, cameras, frames ------------------------------------------------


def ensure_line(session: Session, line_id: str, name: str) -> None:
    """Register a line, or update its display name (the config file is the truth)."""
    row = _get_or_insert(
        session,
        lambda: session.scalar(select(LineRow).where(LineRow.line_id == line_id)),
        lambda: LineRow(line_id=line_id, name=name),
    )
    if row.name != name:
        row.name = name
        session.flush()


def _ensure_line_exists(session: Session, line_id: str) -> None:
    """Make the foreign key target exist without overwriting a configured name."""
    _get_or_insert(
        session,
        lambda: session.scalar(select(LineRow.id).where(LineRow.line_id == line_id)),
        lambda: LineRow(line_id=line_id, name=line_id),
    )


def ensure_camera(
    session: Session, line_id: str, camera_id: str, source_uri: str, mm_per_px: float | None
) -> None:
    """Register a camera (and its line if new), or update its source and scale."""
    _ensure_line_exists(session, line_id)
    row = _get_or_insert(
        session,
        lambda: session.scalar(
            select(CameraRow).where(CameraRow.line_id == line_id, CameraRow.camera_id == camera_id)
        ),
        lambda: CameraRow(line_id=line_id, camera_id=camera_id, source_uri=source_uri, mm_per_px=mm_per_px),
    )
    if (row.source_uri, row.mm_per_px) != (source_uri, mm_per_px):
        row.source_uri, row.mm_per_px = source_uri, mm_per_px
        session.flush()


def record_frame(session: Session, frame: Frame, store_path: str) -> int:
    """Store one frame's metadata and return its id (see ``record_frames``)."""
    return record_frames(session, [(frame, store_path)])[0]


def record_frames(session: Session, frames: Sequence[tuple[Frame, str]]) -> list[int]:
    """Store the metadata of (frame, store path) pairs; their ids, in order. A frame whose sha256 is
    already known keeps its old id, also when another process records it at the same moment, and,
    its bytes being in the store again (they are written before the rows), loses any mark that image
    retention removed its picture.

    A line is registered (named by its id) if nothing registered it yet, so an
    accepted frame is never lost to a missing foreign key.
    """
    shas = [frame.sha256 for frame, _ in frames]
    ids = _frame_ids(session, shas)
    if ids:
        session.execute(
            update(FrameRow)
            .where(FrameRow.sha256.in_(list(ids)), FrameRow.image_pruned_at.is_not(None))
            .values(image_pruned_at=None)
            .execution_options(synchronize_session=False)
        )
    new = {frame.sha256: (frame, path) for frame, path in frames if frame.sha256 not in ids}
    if new:
        for line_id in sorted({frame.line_id for frame, _ in new.values()}):
            _ensure_line_exists(session, line_id)
        now = utcnow()
        rows = [
            {
                "sha256": frame.sha256,
                "line_id": frame.line_id,
                "camera_id": frame.camera_id,
                "captured_at": frame.captured_at,
                "source_uri": frame.source_uri,
                "width": frame.width,
                "height": frame.height,
                "store_path": path,
                "created_at": now,
            }
            for frame, path in new.values()
        ]
        session.execute(_insert_skipping_conflicts(session, FrameRow, "sha256"), rows)
        ids.update(_frame_ids(session, list(new)))
    missing = [sha for sha in shas if sha not in ids]
    if missing:  # a conflict that is not the one we expect: surface it
        raise StorageError(f"could not insert or find frame {missing[0]}")
    return [ids[sha] for sha in shas]


def _frame_ids(session: Session, shas: Sequence[str]) -> dict[str, int]:
    found = session.execute(select(FrameRow.sha256, FrameRow.id).where(FrameRow.sha256.in_(shas)))
    return dict(found.tuples().all())


def _insert_skipping_conflicts(session: Session, model: type[Base], *unique: str) -> Any:
    """INSERT … ON CONFLICT (unique) DO NOTHING: a row another transaction already holds is skipped
    (PostgreSQL waits for that transaction first), on both supported databases."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=list(unique))
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing(index_elements=list(unique))
    raise StorageError(f"unsupported database {dialect!r}: expected sqlite or postgresql")


def record_frame_error(
    session: Session,
    line_id: str,
    camera_id: str,
    source_uri: str,
    position: str | int | None,
    message: str,
) -> int:
    """Log a frame that could not be read (the line goes on); returns the error's id."""
    row = FrameErrorRow(
        line_id=line_id,
        camera_id=camera_id,
        source_uri=source_uri,
        position=None if position is None else str(position),
        message=message,
    )
    session.add(row)
    session.flush()
    return row.id


# --- inspections -----------------------------------------------------------


def _finding_values(finding: Finding) -> dict[str, Any]:
    """A finding's columns; numbers go through int()/float() since numpy scalars are not JSON."""
    region = finding.region
    box = (None,) * 4 if region is None else tuple(int(v) for v in region.box)
    return {
        "specialist": finding.specialist,
        "model_version": finding.model_version,
        "kind": str(finding.kind),
        "score": None if finding.score is None else float(finding.score),
        "label": finding.label,
        "text": finding.text,
        **dict(zip(("box_x", "box_y", "box_w", "box_h"), box, strict=True)),
        "area_px": None if region is None else int(region.area_px),
        "area_mm2": None if region is None or region.area_mm2 is None else float(region.area_mm2),
        "length_mm": None if region is None or region.length_mm is None else float(region.length_mm),
    }


def record_inspection(
    session: Session,
    frame_id: int,
    result: InspectionResult,
    *,
    flow_run_id: str | None = None,
    heatmap_sha256: str | None = None,
) -> bool:
    """Store one inspection and its findings (see ``record_inspections``)."""
    return record_inspections(session, [(frame_id, result, heatmap_sha256)], flow_run_id=flow_run_id)[0]


def record_inspections(
    session: Session,
    inspections: Sequence[tuple[int, InspectionResult, str | None]],
    *,
    flow_run_id: str | None = None,
) -> list[bool]:
    """Store (frame id, result, heat map sha256) inspections and their findings, in a few statements
    for the lot; for each, False, writing nothing, if that frame was already inspected under that
    ``config_hash``.

    Safe when two processes race on the same frame: the unique constraint lets one
    insert win, and the other's is skipped (False).
    """
    if not inspections:
        return []
    frame_shas = dict(
        session.execute(
            select(FrameRow.id, FrameRow.sha256).where(FrameRow.id.in_({i for i, _, _ in inspections}))
        )
        .tuples()
        .all()
    )
    for frame_id, result, _ in inspections:
        if frame_id not in frame_shas:
            raise StorageError(f"cannot record inspection: no frame with id {frame_id}")
        if frame_shas[frame_id] != result.frame_sha256:
            raise ValueError(
                f"inspection is for frame {result.frame_sha256[:12]}…, "
                f"but frame id {frame_id} is {frame_shas[frame_id][:12]}…"
            )
    now = utcnow()
    rows = [
        {
            "frame_id": frame_id,
            "config_hash": result.config_hash,
            "decision": str(result.decision),
            "reason": result.reason,
            "anomaly_score": None if result.anomaly_score is None else float(result.anomaly_score),
            "timings_ms": {str(k): float(v) for k, v in result.timings_ms.items()},
            "providers": [str(p) for p in result.providers],
            "model_versions": {f.specialist: f.model_version for f in result.findings},
            "flow_run_id": flow_run_id,
            "heatmap_sha256": heatmap_sha256,
            "created_at": now,
        }
        for frame_id, result, heatmap_sha256 in inspections
    ]
    insert = _insert_skipping_conflicts(session, InspectionRow, "frame_id", "config_hash").returning(
        InspectionRow.id, InspectionRow.frame_id, InspectionRow.config_hash
    )
    new = {(frame_id, config): row_id for row_id, frame_id, config in session.execute(insert, rows).tuples()}
    recorded = []
    findings = []
    for frame_id, result, _ in inspections:
        row_id = new.pop((frame_id, result.config_hash), None)  # a repeat within the lot is not new
        recorded.append(row_id is not None)
        if row_id is not None:
            findings += [{**_finding_values(f), "inspection_id": row_id} for f in result.findings]
    if findings:
        session.execute(insert_rows(FindingRow), findings)
    return recorded


def _inspection_record(inspection: InspectionRow, frame: FrameRow) -> InspectionRecord:
    return InspectionRecord(
        id=inspection.id,
        frame_id=frame.id,
        frame_sha256=frame.sha256,
        line_id=frame.line_id,
        camera_id=frame.camera_id,
        captured_at=frame.captured_at,
        source_uri=frame.source_uri,
        store_path=frame.store_path,
        config_hash=inspection.config_hash,
        decision=Decision(inspection.decision),
        reason=inspection.reason,
        anomaly_score=inspection.anomaly_score,
        timings_ms=dict(inspection.timings_ms),
        providers=tuple(inspection.providers),
        model_versions=dict(inspection.model_versions),
        flow_run_id=inspection.flow_run_id,
        heatmap_sha256=inspection.heatmap_sha256,
        created_at=inspection.created_at,
    )


def recent_inspections(
    session: Session, line_id: str | None = None, limit: int = 50
) -> list[InspectionRecord]:
    """The newest inspections, newest first, of one line or (``None``) of all lines."""
    stmt = (
        select(InspectionRow, FrameRow)
        .join(FrameRow, InspectionRow.frame_id == FrameRow.id)
        .order_by(InspectionRow.created_at.desc(), InspectionRow.id.desc())
        .limit(limit)
    )
    if line_id is not None:
        stmt = stmt.where(FrameRow.line_id == line_id)
    return [_inspection_record(i, f) for i, f in session.execute(stmt).tuples()]


def _region(row: FindingRow) -> Region | None:
    if row.box_x is None or row.box_y is None or row.box_w is None or row.box_h is None:
        return None
    # The scale is not stored separately; it is recovered from the stored length.
    mm_per_px = None if row.length_mm is None else row.length_mm / max(row.box_w, row.box_h)
    return Region(
        x=row.box_x,
        y=row.box_y,
        w=row.box_w,
        h=row.box_h,
        area_px=row.area_px or 0,
        mm_per_px=mm_per_px,
    )


def inspection_findings(session: Session, inspection_id: int) -> list[Finding]:
    """The findings of one inspection, rebuilt as ``Finding`` objects (without heat maps)."""
    rows = session.scalars(
        select(FindingRow).where(FindingRow.inspection_id == inspection_id).order_by(FindingRow.id)
    )
    return [
        Finding(
            specialist=r.specialist,
            model_version=r.model_version,
            kind=FindingKind(r.kind),
            score=r.score,
            label=r.label,
            region=_region(r),
            text=r.text,
        )
        for r in rows
    ]


def decision_counts(session: Session, line_id: str | None = None) -> dict[Decision, int]:
    """How many inspections ended in each decision; every decision is a key, even at 0."""
    stmt = select(InspectionRow.decision, func.count()).group_by(InspectionRow.decision)
    if line_id is not None:
        stmt = stmt.join(FrameRow, InspectionRow.frame_id == FrameRow.id).where(FrameRow.line_id == line_id)
    counts = dict.fromkeys(Decision, 0)
    for decision, n in session.execute(stmt).tuples():
        counts[Decision(decision)] = n
    return counts


def count_frame_errors(session: Session, line_id: str | None = None) -> int:
    """How many frames could not be read, on one line or on all."""
    stmt = select(func.count()).select_from(FrameErrorRow)
    if line_id is not None:
        stmt = stmt.where(FrameErrorRow.line_id == line_id)
    return session.scalar(stmt) or 0


# --- source watermarks -----------------------------------------------------


def _watermark_row(
    session: Session, line_id: str, camera_id: str, source_uri: str
) -> SourceWatermarkRow | None:
    return session.scalar(
        select(SourceWatermarkRow).where(
            SourceWatermarkRow.line_id == line_id,
            SourceWatermarkRow.camera_id == camera_id,
            SourceWatermarkRow.source_uri == source_uri,
        )
    )


def get_watermark(session: Session, line_id: str, camera_id: str, source_uri: str) -> str | None:
    """Where reading of this source last stopped, or None if it never ran."""
    row = _watermark_row(session, line_id, camera_id, source_uri)
    return None if row is None else row.watermark


def set_watermark(session: Session, line_id: str, camera_id: str, source_uri: str, watermark: str) -> None:
    """Record where reading of this source has got to (insert or update)."""
    row = _get_or_insert(
        session,
        lambda: _watermark_row(session, line_id, camera_id, source_uri),
        lambda: SourceWatermarkRow(
            line_id=line_id, camera_id=camera_id, source_uri=source_uri, watermark=watermark
        ),
    )
    if row.watermark != watermark:
        row.watermark = watermark
        row.updated_at = utcnow()
        session.flush()
