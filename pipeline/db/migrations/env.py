"""Alembic environment for qcflow.

Used two ways: programmatically by ``pipeline.db.engine.upgrade_to_head``, which
hands over an open connection in ``config.attributes["connection"]`` (so the
engine's SQLite pragmas and transaction settings apply), and from the alembic
CLI for writing new revisions, where the URL comes from ``sqlalchemy.url`` or
``QCFLOW_DATABASE_URL``. No logging configuration is done here: that belongs
to the application.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from pipeline.db.engine import make_engine
from pipeline.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("QCFLOW_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or QCFLOW_DATABASE_URL")
    return url


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _configure(connection)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
