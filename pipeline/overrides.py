"""Decision overrides: a person's PASS/FAIL on an inspection, with a reason.

The automatic decision is never changed; each override is a new
``inspection_reviews`` row (the newest is in force) plus an audit entry, so the
history of who decided what, and why, is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from pipeline.audit import write_audit
from pipeline.db.models import FrameRow, InspectionReviewRow, InspectionRow
from pipeline.errors import QCError
from pipeline.types import Decision
from pipeline.users import Role, UserRecord, require_role

OVERRIDE_DECISIONS = (Decision.PASS, Decision.FAIL)


class UnknownInspection(QCError):
    """No inspection with that id."""


@dataclass(frozen=True, slots=True)
class InspectionReview:
    id: int
    inspection_id: int
    decision: Decision
    reason: str
    user_name: str
    created_at: datetime


def _review(row: InspectionReviewRow) -> InspectionReview:
    return InspectionReview(
        id=row.id,
        inspection_id=row.inspection_id,
        decision=Decision(row.decision),
        reason=row.reason,
        user_name=row.user_name,
        created_at=row.created_at,
    )


def override_decision(
    session: Session, user: UserRecord, inspection_id: int, decision: Decision | str, reason: str
) -> InspectionReview:
    """Record ``user``'s PASS/FAIL on an inspection (operators and above), audited with
    the decision in force before and after."""
    require_role(user, Role.OPERATOR, "override decisions")
    decision = Decision(decision)
    if decision not in OVERRIDE_DECISIONS:
        raise ValueError(f"an override must be PASS or FAIL, got {decision}")
    reason = reason.strip()
    if not reason:
        raise ValueError(f"overriding inspection {inspection_id} needs a reason")
    inspection = session.get(InspectionRow, inspection_id)
    if inspection is None:
        raise UnknownInspection(f"no inspection with id {inspection_id}")
    before = decision_in_force(session, inspection_id)
    row = InspectionReviewRow(
        inspection_id=inspection_id, decision=decision.value, reason=reason, user_name=user.name
    )
    session.add(row)
    session.flush()
    write_audit(
        session,
        user,
        "inspection.override",
        f"inspection:{inspection_id}",
        {"decision": before.value, "automatic": inspection.decision},
        {"decision": decision.value, "reason": reason},
    )
    return _review(row)


def reviews_of(session: Session, inspection_id: int) -> list[InspectionReview]:
    """Every override of one inspection, oldest first."""
    rows = session.scalars(
        select(InspectionReviewRow)
        .where(InspectionReviewRow.inspection_id == inspection_id)
        .order_by(InspectionReviewRow.id)
    )
    return [_review(r) for r in rows]


def decision_in_force(session: Session, inspection_id: int) -> Decision:
    """The newest override's decision, or the automatic one when nobody overrode it."""
    latest = session.scalar(
        select(InspectionReviewRow.decision)
        .where(InspectionReviewRow.inspection_id == inspection_id)
        .order_by(InspectionReviewRow.id.desc())
        .limit(1)
    )
    if latest is not None:
        return Decision(latest)
    automatic = session.scalar(select(InspectionRow.decision).where(InspectionRow.id == inspection_id))
    if automatic is None:
        raise UnknownInspection(f"no inspection with id {inspection_id}")
    return Decision(automatic)


def unreviewed_review_band(session: Session, *, line_id: str | None = None, limit: int = 50) -> list[int]:
    """Ids of REVIEW-band inspections nobody has decided yet, oldest first (the queue)."""
    stmt = (
        select(InspectionRow.id)
        .where(
            InspectionRow.decision == Decision.REVIEW.value,
            ~exists().where(InspectionReviewRow.inspection_id == InspectionRow.id),
        )
        .order_by(InspectionRow.id)
        .limit(limit)
    )
    if line_id is not None:
        stmt = stmt.join(FrameRow, InspectionRow.frame_id == FrameRow.id).where(FrameRow.line_id == line_id)
    return list(session.scalars(stmt))
