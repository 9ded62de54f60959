"""Image retention: when a frame's picture and heat maps were removed from the store.

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


def upgrade() -> None:
    op.add_column("frames", sa.Column("image_pruned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("frames", "image_pruned_at")
