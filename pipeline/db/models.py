"""ORM rows for every qcflow table.

The schema is owned by the Alembic migrations in ``pipeline/db/migrations``;
these classes must describe exactly the same tables (a test compares them), so
any change here needs a new migration.

Choices that hold across tables:
- Every timestamp is ``UTCDateTime``: tz-aware in Python, stored in UTC, so
  SQLite (which keeps no zone) and PostgreSQL read back the same instant.
- JSON columns use the portable ``sqlalchemy.JSON`` type, not JSONB, so one
  migration serves both databases.
- Small closed vocabularies (decision, review status, role) are plain strings
  backed by a CHECK constraint rather than database enums, which are awkward to
  extend in migrations.
- The MetaData has a naming convention so every constraint has a stable name
  that migrations can refer to on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Short string lengths are a hint for PostgreSQL indexes and documentation;
# SQLite ignores them.
ID = 64
NAME = 200
URI = 1024

DECISIONS = ("PASS", "FAIL", "REVIEW")
FINDING_KINDS = ("anomaly", "defect_class", "text", "description", "error")
REVIEW_STATUSES = ("pending", "approved", "rejected")
SUITE_LABELS = ("good", "defect")
ROLES = ("operator", "reviewer", "admin")


def utcnow() -> datetime:
    """The current instant, tz-aware in UTC (the only kind of time we store)."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    """SQL text for ``column IN (...)``, shared by models and the migration."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always tz-aware UTC on the Python side.

    SQLite has no time zone type and hands back naive values; PostgreSQL
    returns the session's zone. Normalising both ways keeps comparisons and
    ordering identical on either database. Naive input is refused because its
    meaning (local? UTC?) cannot be known.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass a tz-aware time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base whose metadata carries the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class LineRow(Base):
    """A production line, keyed by the ``line_id`` used in its config file."""

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[str] = mapped_column(String(ID), unique=True)
    name: Mapped[str] = mapped_column(String(NAME))


class CameraRow(Base):
    """A camera on a line; ``mm_per_px`` is its scale when calibrated."""

    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("line_id", "camera_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[str] = mapped_column(String(ID), ForeignKey("lines.line_id", ondelete="CASCADE"))
    camera_id: Mapped[str] = mapped_column(String(ID))
    source_uri: Mapped[str] = mapped_column(String(URI))
    mm_per_px: Mapped[float | None] = mapped_column(Float)


_PICTURED = text("image_pruned_at IS NULL")


class FrameRow(Base):
    """One accepted frame; its sha256 is its identity in the store and here."""

    __tablename__ = "frames"
    __table_args__ = (
        Index("ix_frames_line_id_captured_at", "line_id", "captured_at"),
        # the frames whose picture is still stored: image retention walks these only
        Index("ix_frames_pictured", "id", postgresql_where=_PICTURED, sqlite_where=_PICTURED),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    line_id: Mapped[str] = mapped_column(String(ID), ForeignKey("lines.line_id"))
    camera_id: Mapped[str] = mapped_column(String(ID))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source_uri: Mapped[str] = mapped_column(String(URI))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    store_path: Mapped[str] = mapped_column(String(URI))
    created_at: Mapped[datetime] = _created_at()
    # when retention removed this frame's picture and heat maps from the store (the rows stay)
    image_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    inspections: Mapped[list[InspectionRow]] = relationship(back_populates="frame", passive_deletes=True)


class FrameErrorRow(Base):
    """A frame that could not be read; kept so the line can go on without losing track.

    No foreign key to ``lines``: an error may come from a source before its line
    is registered, and the error must still be recorded.
    """

    __tablename__ = "frame_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[str] = mapped_column(String(ID), index=True)
    camera_id: Mapped[str] = mapped_column(String(ID))
    source_uri: Mapped[str] = mapped_column(String(URI))
    position: Mapped[str | None] = mapped_column(String(NAME))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class SourceWatermarkRow(Base):
    """How far a source has been read, so a restarted flow resumes instead of repeating."""

    __tablename__ = "source_watermarks"
    __table_args__ = (UniqueConstraint("line_id", "camera_id", "source_uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[str] = mapped_column(String(ID))
    camera_id: Mapped[str] = mapped_column(String(ID))
    source_uri: Mapped[str] = mapped_column(String(URI))
    watermark: Mapped[str] = mapped_column(String(URI))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class InspectionRow(Base):
    """The decision for one frame under one configuration (unique: re-runs are idempotent)."""

    __tablename__ = "inspections"
    __table_args__ = (
        UniqueConstraint("frame_id", "config_hash"),
        CheckConstraint(_in("decision", DECISIONS), name="decision"),
        Index("ix_inspections_created_at", "created_at"),
        Index("ix_inspections_decision", "decision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    config_hash: Mapped[str] = mapped_column(String(ID))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    anomaly_score: Mapped[float | None] = mapped_column(Float)
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON)
    providers: Mapped[list[str]] = mapped_column(JSON)
    model_versions: Mapped[dict[str, str]] = mapped_column(JSON)
    flow_run_id: Mapped[str | None] = mapped_column(String(ID))
    heatmap_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()

    frame: Mapped[FrameRow] = relationship(back_populates="inspections")
    findings: Mapped[list[FindingRow]] = relationship(
        back_populates="inspection",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FindingRow.id",
    )


class InspectionReviewRow(Base):
    """A person's PASS/FAIL on an inspection; the newest one is in force, the original stays."""

    __tablename__ = "inspection_reviews"
    __table_args__ = (
        CheckConstraint(_in("decision", ("PASS", "FAIL")), name="decision"),
        CheckConstraint("length(reason) > 0", name="reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    user_name: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime] = _created_at()


class FindingRow(Base):
    """What one specialist saw; the region is flattened into box/area columns."""

    __tablename__ = "findings"
    __table_args__ = (CheckConstraint(_in("kind", FINDING_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    specialist: Mapped[str] = mapped_column(String(NAME))
    model_version: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(NAME))
    text: Mapped[str | None] = mapped_column(Text)
    box_x: Mapped[int | None] = mapped_column(Integer)
    box_y: Mapped[int | None] = mapped_column(Integer)
    box_w: Mapped[int | None] = mapped_column(Integer)
    box_h: Mapped[int | None] = mapped_column(Integer)
    area_px: Mapped[int | None] = mapped_column(Integer)
    area_mm2: Mapped[float | None] = mapped_column(Float)
    length_mm: Mapped[float | None] = mapped_column(Float)

    inspection: Mapped[InspectionRow] = relationship(back_populates="findings")


class ModelRow(Base):
    """A registered ONNX model version with the contract and metrics from its model.json.

    The partial unique index lets at most one version of a name be active, so
    "which model is live" can never be ambiguous, whatever the caller does.
    """

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    version: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(ID))
    path: Mapped[str] = mapped_column(String(URI))
    onnx_sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    preprocessing: Mapped[dict[str, Any]] = mapped_column(JSON)
    training_digest: Mapped[str] = mapped_column(String(ID))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _created_at()


Index(
    "uq_models_active_name",
    ModelRow.name,
    unique=True,
    sqlite_where=ModelRow.active,
    postgresql_where=ModelRow.active,
)


class SyntheticImageRow(Base):
    """A generated defect image; pending until a reviewer decides.

    The CHECK on ``reviewed_by`` backs the review gate in the database: an image
    cannot be approved or rejected without naming who did it.
    """

    __tablename__ = "synthetic_images"
    __table_args__ = (
        CheckConstraint(_in("status", REVIEW_STATUSES), name="status"),
        CheckConstraint("status = 'pending' OR reviewed_by IS NOT NULL", name="reviewed_by"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    mask_sha256: Mapped[str] = mapped_column(String(64))
    defect_class: Mapped[str] = mapped_column(String(NAME))
    generator: Mapped[str] = mapped_column(String(NAME))
    model_version: Mapped[str] = mapped_column(String(NAME))
    seed: Mapped[int] = mapped_column(BigInteger)
    conditioning: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_image_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(NAME))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = _created_at()


class SuiteRow(Base):
    """A named, frozen test suite that accuracy reports are computed on."""

    __tablename__ = "suites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    created_at: Mapped[datetime] = _created_at()

    items: Mapped[list[SuiteItemRow]] = relationship(
        back_populates="suite", cascade="all, delete-orphan", passive_deletes=True
    )


class SuiteItemRow(Base):
    """One labelled image in a suite; ``synthetic_image_id`` is set when it was generated."""

    __tablename__ = "suite_items"
    __table_args__ = (
        UniqueConstraint("suite_id", "image_sha256"),
        CheckConstraint(_in("label", SUITE_LABELS), name="label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id", ondelete="CASCADE"))
    image_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))
    defect_class: Mapped[str | None] = mapped_column(String(NAME))
    mask_sha256: Mapped[str | None] = mapped_column(String(64))
    synthetic_image_id: Mapped[int | None] = mapped_column(ForeignKey("synthetic_images.id"))

    suite: Mapped[SuiteRow] = relationship(back_populates="items")


class ReportRow(Base):
    """An accuracy report: which model, on which suite (by digest), with what result."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id"))
    model_name: Mapped[str] = mapped_column(String(NAME))
    model_version: Mapped[str] = mapped_column(String(ID))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    suite_digest: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime] = _created_at()
    path: Mapped[str] = mapped_column(String(URI))


class UserRow(Base):
    """A dashboard/CLI user; the role decides who may review and change thresholds."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(URI))
    created_at: Mapped[datetime] = _created_at()


class AuditLogRow(Base):
    """Who did what, when: approvals, overrides, threshold changes (append-only)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(NAME))
    target: Mapped[str] = mapped_column(String(URI))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = _created_at()
