"""Inspection reviews: a person's PASS/FAIL on an inspection, with a reason.

The original decision stays in ``inspections``; reviews are appended here, the
newest one being the decision in force.

Revision ID: 0002_inspection_reviews
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_inspection_reviews"
down_revision: str | None = "0002_review_gate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspection_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("decision IN ('PASS', 'FAIL')", name=op.f("ck_inspection_reviews_decision")),
        sa.CheckConstraint("length(reason) > 0", name=op.f("ck_inspection_reviews_reason")),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name=op.f("fk_inspection_reviews_inspection_id_inspections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_reviews")),
    )
    op.create_index("ix_inspection_reviews_inspection_id", "inspection_reviews", ["inspection_id"])


def downgrade() -> None:
    op.drop_table("inspection_reviews")
