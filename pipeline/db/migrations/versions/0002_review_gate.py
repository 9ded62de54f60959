"""The review gate in the database: suites may only hold approved synthetic images.

Two triggers, written for SQLite and PostgreSQL:
- a suite item that refers to a synthetic image is refused unless that image is
  approved and the item names the approved pixels (its sha256);
- an approved image that a suite holds cannot leave 'approved' or change its
  pixels, because suites are frozen.

Triggers are not part of the ORM metadata, so models and migrations still agree.

Revision ID: 0002_review_gate
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_review_gate"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM_REFUSED = "review gate: a suite item may only refer to an approved synthetic image, by its sha256"
IMAGE_FROZEN = "review gate: a synthetic image held by a suite must stay approved with the same pixels"

# True when NEW (a suite item) refers to an image that is not approved or to other pixels.
_ITEM_NOT_APPROVED = """NOT EXISTS (SELECT 1 FROM synthetic_images s
    WHERE s.id = NEW.synthetic_image_id AND s.status = 'approved' AND s.sha256 = NEW.image_sha256)"""
# True when NEW/OLD (a synthetic image) is held by a suite and is losing its approval or pixels.
_IMAGE_CHANGED = """EXISTS (SELECT 1 FROM suite_items i WHERE i.synthetic_image_id = OLD.id)
    AND (NEW.status <> 'approved' OR NEW.sha256 <> OLD.sha256)"""

_SQLITE_UP = [
    f"""CREATE TRIGGER trg_suite_items_review_gate_insert BEFORE INSERT ON suite_items
    FOR EACH ROW WHEN NEW.synthetic_image_id IS NOT NULL AND {_ITEM_NOT_APPROVED}
    BEGIN SELECT RAISE(ABORT, '{ITEM_REFUSED}'); END""",
    f"""CREATE TRIGGER trg_suite_items_review_gate_update
    BEFORE UPDATE OF synthetic_image_id, image_sha256 ON suite_items
    FOR EACH ROW WHEN NEW.synthetic_image_id IS NOT NULL AND {_ITEM_NOT_APPROVED}
    BEGIN SELECT RAISE(ABORT, '{ITEM_REFUSED}'); END""",
    f"""CREATE TRIGGER trg_synthetic_images_review_gate BEFORE UPDATE OF status, sha256 ON synthetic_images
    FOR EACH ROW WHEN {_IMAGE_CHANGED}
    BEGIN SELECT RAISE(ABORT, '{IMAGE_FROZEN}'); END""",
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS trg_synthetic_images_review_gate",
    "DROP TRIGGER IF EXISTS trg_suite_items_review_gate_update",
    "DROP TRIGGER IF EXISTS trg_suite_items_review_gate_insert",
]

# check_violation (23514) so drivers raise IntegrityError, as they do for the SQLite ABORT.
_POSTGRES_UP = [
    f"""CREATE FUNCTION suite_items_review_gate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.synthetic_image_id IS NOT NULL AND {_ITEM_NOT_APPROVED} THEN
            RAISE EXCEPTION '{ITEM_REFUSED}' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER trg_suite_items_review_gate
    BEFORE INSERT OR UPDATE OF synthetic_image_id, image_sha256 ON suite_items
    FOR EACH ROW EXECUTE FUNCTION suite_items_review_gate()""",
    f"""CREATE FUNCTION synthetic_images_review_gate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF {_IMAGE_CHANGED} THEN
            RAISE EXCEPTION '{IMAGE_FROZEN}' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER trg_synthetic_images_review_gate BEFORE UPDATE OF status, sha256 ON synthetic_images
    FOR EACH ROW EXECUTE FUNCTION synthetic_images_review_gate()""",
]
_POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS trg_synthetic_images_review_gate ON synthetic_images",
    "DROP FUNCTION IF EXISTS synthetic_images_review_gate()",
    "DROP TRIGGER IF EXISTS trg_suite_items_review_gate ON suite_items",
    "DROP FUNCTION IF EXISTS suite_items_review_gate()",
]


def _run(statements: dict[str, list[str]]) -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in statements:
        raise NotImplementedError(f"review gate triggers exist for sqlite and postgresql, not {dialect}")
    for statement in statements[dialect]:
        op.execute(statement)


def upgrade() -> None:
    _run({"sqlite": _SQLITE_UP, "postgresql": _POSTGRES_UP})


def downgrade() -> None:
    _run({"sqlite": _SQLITE_DOWN, "postgresql": _POSTGRES_DOWN})
