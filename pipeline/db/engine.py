"""Engines, sessions and schema upgrades for the qcflow database.

SQLite (a file under the data directory) is the default so that qcflow runs
with nothing configured; PostgreSQL is chosen by URL. The differences between
the two are handled here once, so the repository code is the same for both.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import StorageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Seconds a SQLite writer waits for another writer before giving up. Long enough
# for a flow and the dashboard to share the file without spurious failures.
SQLITE_BUSY_TIMEOUT_S = 30
# Seconds to wait for a PostgreSQL server before reporting it unreachable.
PG_CONNECT_TIMEOUT_S = 10
# Arbitrary constant key: concurrent upgrade_to_head() calls on PostgreSQL take
# this advisory lock so only one of them runs the migrations at a time.
_UPGRADE_LOCK_KEY = 0x71C_F10


def default_database_url(data_dir: Path) -> str:
    """The SQLite file ``data_dir/qcflow.db`` as a URL (used when none is configured)."""
    return f"sqlite:///{(Path(data_dir) / 'qcflow.db').resolve()}"


def masked_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``, safe for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "<unparseable database URL>"


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine with the settings qcflow relies on for this kind of database.

    SQLite: foreign keys ON (off by default in SQLite), WAL so readers do not
    block the writer, a busy timeout, and ``BEGIN IMMEDIATE`` transactions so
    that two writers queue on the lock instead of failing when a read
    transaction later tries to write (SQLITE_BUSY is not retried in that case).
    The immediate BEGIN also makes SAVEPOINTs work, which pysqlite's own
    transaction handling breaks.

    Other databases: ``pool_pre_ping`` so a connection dropped by the server is
    replaced rather than failing the next query, and a connect timeout.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, **kwargs)
    connect_args = dict(kwargs.pop("connect_args", {}))
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, connect_args=connect_args, **kwargs)


def _make_sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the folder for database {url}: {exc}") from exc
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            if database and database != ":memory:":
                _use_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch a file database to WAL once; retried while another connection holds its lock.

    Two processes opening a new database at once can collide here: switching the journal
    mode needs the exclusive lock, and SQLite reports that collision as "database is
    locked" at once, without waiting for the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def check_connection(engine: Engine) -> None:
    """Run a trivial query, raising ``StorageError`` naming the (masked) URL if it fails.

    Called at start-up so that a wrong URL or a stopped server is reported once,
    clearly, instead of as a stack trace from the first real query.
    """
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(
            f"cannot reach database {masked_url(engine.url)}: {_describe(exc, engine.url)}"
        ) from exc


def _describe(exc: BaseException, url: URL) -> str:
    """The driver's own message, first line only, with the password scrubbed just in case."""
    cause = getattr(exc, "orig", None) or exc
    message = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    if url.password:
        message = message.replace(str(url.password), "***")
    return f"{type(cause).__name__}: {message}"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped in this package (no ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%', which URL-encoded passwords contain.
        rendered = make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade_to_head(url: str | URL | Engine) -> None:
    """Bring the database schema to the newest migration; harmless when already there.

    Runs in one transaction on the caller's engine settings. On PostgreSQL an
    advisory lock serialises concurrent callers (several workers starting at
    once); on SQLite the ``BEGIN IMMEDIATE`` lock does the same.
    """
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
    except SQLAlchemyError as exc:
        raise StorageError(
            f"cannot upgrade database {masked_url(engine.url)}: {_describe(exc, engine.url)}"
        ) from exc
    finally:
        if engine is not url:
            engine.dispose()
    log.info("database %s is at the newest schema", masked_url(engine.url))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory; ``expire_on_commit=False`` so results stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = make_session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def scratch_postgres_database(admin_url: str, prefix: str = "qcflow_scratch") -> Iterator[str]:
    """A throw-away PostgreSQL database on the server of ``admin_url`` (for tests and benchmarks).

    Yields its URL; the database is dropped afterwards, even if connections are left open.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
