"""Engine settings, connection checks, sessions and UTC timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from pipeline.db import (
    check_connection,
    default_database_url,
    make_engine,
    masked_url,
    session_scope,
    upgrade_to_head,
)
from pipeline.db.models import FrameRow, LineRow
from pipeline.db.repository import ensure_line, record_frame
from pipeline.errors import StorageError
from pipeline.types import Frame


def test_default_url_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    url = default_database_url(tmp_path / "data")
    assert url == f"sqlite:///{tmp_path / 'data' / 'qcflow.db'}"
    engine = make_engine(url)  # creates the missing data folder
    try:
        upgrade_to_head(engine)
        assert (tmp_path / "data" / "qcflow.db").is_file()
    finally:
        engine.dispose()


def test_sqlite_engine_enforces_foreign_keys_and_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(default_database_url(tmp_path))
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
            assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert connection.scalar(text("PRAGMA busy_timeout")) >= 1000
    finally:
        engine.dispose()


def test_check_connection_passes_on_a_working_database(db_engine: Engine) -> None:
    check_connection(db_engine)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x",
            "postgresql+psycopg://postgres:***@127.0.0.1:1/x",
        ),
        (
            "postgresql+psycopg://postgres@127.0.0.1:1/x",
            "postgresql+psycopg://postgres@127.0.0.1:1/x",
        ),
    ],
)
def test_unreachable_database_raises_storage_error_with_masked_url(url: str, shown: str) -> None:
    engine = make_engine(url)
    try:
        with pytest.raises(StorageError) as excinfo:
            check_connection(engine)
    finally:
        engine.dispose()
    message = str(excinfo.value)
    assert shown in message
    assert "s3cret" not in message
    assert "OperationalError" in message  # the cause is named too
    with pytest.raises(StorageError, match=r"postgres:\*\*\*@127\.0\.0\.1:1/x"):
        upgrade_to_head("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x")


def test_unusable_sqlite_path_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="not-a-dir"):
        make_engine(f"sqlite:///{blocker / 'qcflow.db'}")


def test_masked_url_hides_password() -> None:
    assert masked_url("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"


def test_session_scope_commits_or_rolls_back(db_engine: Engine) -> None:
    with session_scope(db_engine) as session:
        ensure_line(session, "line-a", "Line A")
    with pytest.raises(RuntimeError), session_scope(db_engine) as session:
        ensure_line(session, "line-b", "Line B")
        raise RuntimeError("boom")
    with Session(db_engine) as session:
        assert list(session.scalars(select(LineRow.line_id))) == ["line-a"]


def test_timestamps_are_stored_in_utc_and_read_back_aware(
    db_session: Session, make_frame: Callable[..., Frame]
) -> None:
    frame = make_frame(1)
    cest = timezone(timedelta(hours=2))
    local = frame.captured_at.astimezone(cest)
    frame_id = record_frame(
        db_session,
        Frame(
            pixels=frame.pixels,
            line_id=frame.line_id,
            camera_id=frame.camera_id,
            captured_at=local,
            sha256=frame.sha256,
            source_uri=frame.source_uri,
        ),
        "store/ab/cd.png",
    )
    db_session.commit()
    db_session.expire_all()
    stored = db_session.get_one(FrameRow, frame_id)
    assert stored.captured_at == local
    assert stored.captured_at.utcoffset() == timedelta(0)
    # Ordering and comparisons in SQL see the same instant on every backend.
    later = db_session.scalar(
        select(func.count()).where(FrameRow.captured_at >= local - timedelta(seconds=1))
    )
    assert later == 1


def test_naive_datetime_is_refused(db_session: Session) -> None:
    ensure_line(db_session, "line-a", "Line A")
    db_session.add(
        FrameRow(
            sha256="0" * 64,
            line_id="line-a",
            camera_id="cam",
            captured_at=datetime(2025, 1, 1),
            source_uri="x",
            width=8,
            height=8,
            store_path="p",
        )
    )
    with pytest.raises(StatementError, match="naive datetime"):
        db_session.flush()
