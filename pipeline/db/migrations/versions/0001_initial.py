"""Initial schema: lines, frames, inspections, models, review and audit tables.

Written by hand to match ``pipeline/db/models.py`` exactly (a test compares
them). Migrations are frozen history: they spell out types and constraint
names instead of importing the models, which will move on. Names are wrapped
in ``op.f()`` so the metadata's naming convention does not rename them again.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.sql.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column:
    """A UTC timestamp column (models use the UTCDateTime decorator over this type)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _create(table: str, *items: SchemaItem) -> None:
    """Create a table with an integer ``id`` primary key named as the models name it."""
    op.create_table(
        table,
        sa.Column("id", sa.Integer(), nullable=False),
        *items,
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )


def upgrade() -> None:
    _create(
        "lines",
        _str("line_id", 64),
        _str("name", 200),
        sa.UniqueConstraint("line_id", name=op.f("uq_lines_line_id")),
    )
    _create(
        "cameras",
        _str("line_id", 64),
        _str("camera_id", 64),
        _str("source_uri", 1024),
        sa.Column("mm_per_px", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["lines.line_id"],
            name=op.f("fk_cameras_line_id_lines"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("line_id", "camera_id", name=op.f("uq_cameras_line_id_camera_id")),
    )
    _create(
        "frames",
        _str("sha256", 64),
        _str("line_id", 64),
        _str("camera_id", 64),
        _ts("captured_at"),
        _str("source_uri", 1024),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        _str("store_path", 1024),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["line_id"], ["lines.line_id"], name=op.f("fk_frames_line_id_lines")),
        sa.UniqueConstraint("sha256", name=op.f("uq_frames_sha256")),
    )
    op.create_index("ix_frames_line_id_captured_at", "frames", ["line_id", "captured_at"])
    _create(
        "frame_errors",
        _str("line_id", 64),
        _str("camera_id", 64),
        _str("source_uri", 1024),
        _str("position", 200, nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_frame_errors_line_id", "frame_errors", ["line_id"])
    _create(
        "source_watermarks",
        _str("line_id", 64),
        _str("camera_id", 64),
        _str("source_uri", 1024),
        _str("watermark", 1024),
        _ts("updated_at"),
        sa.UniqueConstraint(
            "line_id",
            "camera_id",
            "source_uri",
            name=op.f("uq_source_watermarks_line_id_camera_id_source_uri"),
        ),
    )
    _create(
        "inspections",
        sa.Column("frame_id", sa.Integer(), nullable=False),
        _str("config_hash", 64),
        _str("decision", 8),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("anomaly_score", sa.Float(), nullable=True),
        sa.Column("timings_ms", sa.JSON(), nullable=False),
        sa.Column("providers", sa.JSON(), nullable=False),
        sa.Column("model_versions", sa.JSON(), nullable=False),
        _str("flow_run_id", 64, nullable=True),
        _str("heatmap_sha256", 64, nullable=True),
        _ts("created_at"),
        sa.CheckConstraint("decision IN ('PASS', 'FAIL', 'REVIEW')", name=op.f("ck_inspections_decision")),
        sa.ForeignKeyConstraint(
            ["frame_id"],
            ["frames.id"],
            name=op.f("fk_inspections_frame_id_frames"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("frame_id", "config_hash", name=op.f("uq_inspections_frame_id_config_hash")),
    )
    op.create_index("ix_inspections_created_at", "inspections", ["created_at"])
    op.create_index("ix_inspections_decision", "inspections", ["decision"])
    _create(
        "findings",
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        _str("specialist", 200),
        _str("model_version", 200),
        _str("kind", 32),
        sa.Column("score", sa.Float(), nullable=True),
        _str("label", 200, nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        *(sa.Column(f"box_{c}", sa.Integer(), nullable=True) for c in "xywh"),
        sa.Column("area_px", sa.Integer(), nullable=True),
        sa.Column("area_mm2", sa.Float(), nullable=True),
        sa.Column("length_mm", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('anomaly', 'defect_class', 'text', 'description', 'error')",
            name=op.f("ck_findings_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            name=op.f("fk_findings_inspection_id_inspections"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_findings_inspection_id", "findings", ["inspection_id"])
    _create(
        "models",
        _str("name", 200),
        _str("version", 64),
        _str("kind", 64),
        _str("path", 1024),
        _str("onnx_sha256", 64),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("preprocessing", sa.JSON(), nullable=False),
        _str("training_digest", 64),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("name", "version", name=op.f("uq_models_name_version")),
    )
    # At most one active version per model name.
    op.create_index(
        "uq_models_active_name",
        "models",
        ["name"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    _create(
        "synthetic_images",
        _str("sha256", 64),
        _str("mask_sha256", 64),
        _str("defect_class", 200),
        _str("generator", 200),
        _str("model_version", 200),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("conditioning", sa.JSON(), nullable=False),
        _str("source_image_sha256", 64),
        _str("status", 16),
        _str("reviewed_by", 200, nullable=True),
        _ts("reviewed_at", nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name=op.f("ck_synthetic_images_status")
        ),
        sa.CheckConstraint(
            "status = 'pending' OR reviewed_by IS NOT NULL",
            name=op.f("ck_synthetic_images_reviewed_by"),
        ),
        sa.UniqueConstraint("sha256", name=op.f("uq_synthetic_images_sha256")),
    )
    op.create_index("ix_synthetic_images_status", "synthetic_images", ["status"])
    _create(
        "suites",
        _str("name", 200),
        _ts("created_at"),
        sa.UniqueConstraint("name", name=op.f("uq_suites_name")),
    )
    _create(
        "suite_items",
        sa.Column("suite_id", sa.Integer(), nullable=False),
        _str("image_sha256", 64),
        _str("label", 16),
        _str("defect_class", 200, nullable=True),
        _str("mask_sha256", 64, nullable=True),
        sa.Column("synthetic_image_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("label IN ('good', 'defect')", name=op.f("ck_suite_items_label")),
        sa.ForeignKeyConstraint(
            ["suite_id"],
            ["suites.id"],
            name=op.f("fk_suite_items_suite_id_suites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["synthetic_image_id"],
            ["synthetic_images.id"],
            name=op.f("fk_suite_items_synthetic_image_id_synthetic_images"),
        ),
        sa.UniqueConstraint("suite_id", "image_sha256", name=op.f("uq_suite_items_suite_id_image_sha256")),
    )
    _create(
        "reports",
        sa.Column("suite_id", sa.Integer(), nullable=False),
        _str("model_name", 200),
        _str("model_version", 64),
        sa.Column("metrics", sa.JSON(), nullable=False),
        _str("suite_digest", 64),
        _str("created_by", 200),
        _ts("created_at"),
        _str("path", 1024),
        sa.ForeignKeyConstraint(["suite_id"], ["suites.id"], name=op.f("fk_reports_suite_id_suites")),
    )
    _create(
        "users",
        _str("name", 200),
        _str("role", 16),
        _str("password_hash", 1024),
        _ts("created_at"),
        sa.CheckConstraint("role IN ('operator', 'reviewer', 'admin')", name=op.f("ck_users_role")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    _create(
        "audit_log",
        _str("user_name", 200),
        _str("action", 200),
        _str("target", 1024),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        _ts("created_at"),
    )
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "users",
        "reports",
        "suite_items",
        "suites",
        "synthetic_images",
        "models",
        "findings",
        "inspections",
        "source_watermarks",
        "frame_errors",
        "frames",
        "cameras",
        "lines",
    ):
        op.drop_table(table)
