"""Image retention: when a frame's picture and heat maps were removed from the store, and an index
of the frames whose picture is still there.

Revision ID: 0004_image_retention
Revises: 0002_inspection_reviews
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_image_retention"
down_revision: str | None = "0002_inspection_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PICTURED = sa.text("image_pruned_at IS NULL")


def upgrade() -> None:
    op.add_column("frames", sa.Column("image_pruned_at", sa.DateTime(timezone=True), nullable=True))
    # the frames whose picture is still stored: image retention walks these only
    op.create_index("ix_frames_pictured", "frames", ["id"], postgresql_where=PICTURED, sqlite_where=PICTURED)


def downgrade() -> None:
    op.drop_index("ix_frames_pictured", "frames")
    op.drop_column("frames", "image_pruned_at")
