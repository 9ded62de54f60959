"""Two workers recording the same inspection at once: exactly one row, no crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pipeline.db.engine import make_engine, make_session_factory, upgrade_to_head
from pipeline.db.models import FindingRow, InspectionRow
from pipeline.db.repository import record_frame, record_inspection
from pipeline.types import Frame, InspectionResult


def _prepare(engine: Engine, frame: Frame) -> int:
    with Session(engine) as session:
        frame_id = record_frame(session, frame, "store/1.png")
        session.commit()
    return frame_id


def _counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        inspections = session.scalar(select(func.count()).select_from(InspectionRow))
        findings = session.scalar(select(func.count()).select_from(FindingRow))
    return inspections or 0, findings or 0


def test_racing_threads_insert_one_inspection(
    db_engine: Engine,
    make_frame: Callable[..., Frame],
    make_result: Callable[..., InspectionResult],
) -> None:
    frame = make_frame(1)
    frame_id = _prepare(db_engine, frame)
    factory = make_session_factory(db_engine)
    barrier = threading.Barrier(4)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with factory() as session:
                barrier.wait()
                outcomes.append(record_inspection(session, frame_id, make_result(frame)))
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(outcomes) == [False, False, False, True]
    assert _counts(db_engine) == (1, 2)


@pytest.mark.postgres
def test_loser_of_a_real_race_returns_false(
    pg_url: str,
    make_frame: Callable[..., Frame],
    make_result: Callable[..., InspectionResult],
) -> None:
    """Force the interleaving: B's existence check passes while A's row is uncommitted,
    so B's insert blocks on the unique index and fails once A commits."""
    upgrade_to_head(pg_url)
    engine = make_engine(pg_url)
    try:
        frame = make_frame(1)
        frame_id = _prepare(engine, frame)
        outcome: list[bool | BaseException] = []

        def second() -> None:
            try:
                with Session(engine) as session:
                    outcome.append(record_inspection(session, frame_id, make_result(frame)))
                    session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                outcome.append(exc)

        with Session(engine) as first:
            assert record_inspection(first, frame_id, make_result(frame))
            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.5)
            assert outcome == [], "second insert should wait for the first transaction"
            first.commit()
        thread.join(timeout=30)
        assert outcome == [False]
        assert _counts(engine) == (1, 2)
    finally:
        engine.dispose()
