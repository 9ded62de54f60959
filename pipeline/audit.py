"""The audit log writer: every change a person makes is recorded here.

One function, used by the dashboard, the review queue and the CLI alike, so
"who did what, before and after, when" is always written the same way and in
the caller's transaction (the change and its audit row commit together).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.db.models import AuditLogRow


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    user_name: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


def _user_name(user: object) -> str:
    """Accept a name or anything with a ``name`` (a user record or row)."""
    name = user if isinstance(user, str) else getattr(user, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"audit entry needs the acting user's name, got {user!r}")
    return name


def write_audit(
    session: Session,
    user: object,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditEntry:
    """Append one audit entry (flushed, not committed: it commits with the change it records).

    ``user`` is a user name or an object with a ``name``; ``action`` a dotted verb such as
    ``inspection.override``; ``target`` what was changed, e.g. ``inspection:42``.
    """
    if not action or not target:
        raise ValueError(f"audit entry needs an action and a target, got {action!r} on {target!r}")
    row = AuditLogRow(user_name=_user_name(user), action=action, target=target, before=before, after=after)
    session.add(row)
    session.flush()
    return _entry(row)


def _entry(row: AuditLogRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        user_name=row.user_name,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        created_at=row.created_at,
    )


def list_audit(
    session: Session, *, offset: int = 0, limit: int = 100, target: str | None = None
) -> list[AuditEntry]:
    """Audit entries, newest first; optionally only those about one ``target``."""
    stmt = select(AuditLogRow).order_by(AuditLogRow.created_at.desc(), AuditLogRow.id.desc())
    if target is not None:
        stmt = stmt.where(AuditLogRow.target == target)
    return [_entry(r) for r in session.scalars(stmt.offset(offset).limit(limit))]


def count_audit(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditLogRow)) or 0
