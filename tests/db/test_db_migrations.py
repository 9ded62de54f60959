"""The Alembic migrations build exactly the schema the ORM models describe."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Engine, inspect, select
from sqlalchemy.orm import Session

from pipeline.db.engine import alembic_config, make_engine, upgrade_to_head
from pipeline.db.models import Base, LineRow
from pipeline.db.repository import ensure_line


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_upgrade_empty_database_matches_models(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            inspector = inspect(connection)
            for table in Base.metadata.sorted_tables:
                # compare_metadata ignores CHECK constraints and primary key names;
                # both matter here (the review gate and decisions rely on CHECKs).
                reflected = {c["name"] for c in inspector.get_check_constraints(table.name)}
                expected = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
                assert reflected == expected, table.name
                assert inspector.get_pk_constraint(table.name)["name"] == f"pk_{table.name}"
        assert _current(engine) == _head()
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless_and_keeps_data(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            ensure_line(session, "line-a", "Line A")
            session.commit()
        upgrade_to_head(db_url)
        upgrade_to_head(engine)
        with engine.connect() as connection:
            assert connection.scalar(select(LineRow.name)) == "Line A"
        assert _current(engine) == _head()
    finally:
        engine.dispose()


def test_concurrent_upgrades_both_succeed(db_url: str) -> None:
    """Several workers starting at once on an empty database must not trip over each other."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def upgrade() -> None:
        barrier.wait()
        try:
            upgrade_to_head(db_url)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    engine = make_engine(db_url)
    try:
        assert _current(engine) == _head()
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade_again(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        upgrade_to_head(engine)
        assert _current(engine) == _head()
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", sorted(Base.metadata.tables))
def test_every_table_has_a_row_class_named_row(table: str) -> None:
    names = {m.class_.__name__ for m in Base.registry.mappers if m.class_.__tablename__ == table}
    assert names and all(n.endswith("Row") for n in names)
