"""Dashboard and CLI users: names, roles and argon2 password hashes.

Roles are ordered: an admin may do everything a reviewer may, a reviewer
everything an operator may. Password hashing uses argon2-cffi (imported when
first needed, so ``import pipeline`` stays light).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.audit import write_audit
from pipeline.db.models import UserRow
from pipeline.errors import ConfigError, QCError

if TYPE_CHECKING:
    from argon2 import PasswordHasher

_USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MIN_PASSWORD_LENGTH = 8


class Role(enum.StrEnum):
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class UserExists(QCError):
    """A user with that name is already registered."""


class UnknownUser(QCError):
    """No user with that name is registered."""


class PermissionDenied(QCError):
    """The user's role does not allow the action."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    role: Role
    created_at: datetime


@functools.cache
def _hasher() -> PasswordHasher:
    try:
        from argon2 import PasswordHasher
    except ImportError as exc:  # the [dashboard] extra brings it
        raise ConfigError("password hashing needs argon2-cffi: pip install 'qcflow[dashboard]'") from exc
    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A valid hash of a random password, checked when the user is unknown so a login
# for a missing name costs the same time as a wrong password (no user enumeration).
@functools.cache
def _decoy_hash() -> str:
    return _hasher().hash("decoy-password-never-used")


def require_role(user: UserRecord, needed: Role, action: str) -> None:
    if not user.role.allows(needed):
        raise PermissionDenied(f"{user.name} ({user.role}) may not {action}: needs {needed} or above")


def _record(row: UserRow) -> UserRecord:
    return UserRecord(id=row.id, name=row.name, role=Role(row.role), created_at=row.created_at)


def _row(session: Session, name: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.name == name))


def add_user(
    session: Session, name: str, role: Role | str, password: str, *, created_by: str = "cli"
) -> UserRecord:
    """Register a user (audited as ``user.add`` by ``created_by``); the password is stored hashed."""
    if not _USER_NAME.match(name):
        raise ValueError(f"user name {name!r}: use 1-100 letters, digits or _.@-")
    role = Role(role)
    if _row(session, name) is not None:
        raise UserExists(f"user {name!r} already exists")
    row = UserRow(name=name, role=role.value, password_hash=hash_password(password))
    session.add(row)
    session.flush()
    write_audit(session, created_by, "user.add", f"user:{name}", None, {"role": role.value})
    return _record(row)


def set_role(session: Session, actor: UserRecord, name: str, role: Role | str) -> UserRecord:
    """Change a user's role (admins only, audited with the old and new role)."""
    require_role(actor, Role.ADMIN, "change roles")
    role = Role(role)
    row = _row(session, name)
    if row is None:
        raise UnknownUser(f"no user named {name!r}")
    before = row.role
    row.role = role.value
    session.flush()
    write_audit(session, actor, "user.role", f"user:{name}", {"role": before}, {"role": role.value})
    return _record(row)


def get_user(session: Session, name: str) -> UserRecord | None:
    row = _row(session, name)
    return None if row is None else _record(row)


def list_users(session: Session) -> list[UserRecord]:
    return [_record(r) for r in session.scalars(select(UserRow).order_by(UserRow.name))]


def authenticate(session: Session, name: str, password: str) -> UserRecord | None:
    """The user when name and password match, else None (same cost either way)."""
    row = _row(session, name)
    if row is None:
        verify_password(_decoy_hash(), password)
        return None
    return _record(row) if verify_password(row.password_hash, password) else None
