"""The qcflow database: ORM rows, Alembic migrations, engine helpers and repository.

Import repository functions from ``pipeline.db.repository``; the engine helpers
are re-exported here because almost every entry point needs them.
"""

from pipeline.db.engine import (
    check_connection,
    default_database_url,
    make_engine,
    make_session_factory,
    masked_url,
    session_scope,
    upgrade_to_head,
)

__all__ = [
    "check_connection",
    "default_database_url",
    "make_engine",
    "make_session_factory",
    "masked_url",
    "session_scope",
    "upgrade_to_head",
]
