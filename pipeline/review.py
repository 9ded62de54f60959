"""The review gate: generated images are stored pending and used only once a person approves them.

``approved_synthetic_images`` is the ONE way to select synthetic images for any
use (a suite, a training set, a report); it filters ``status == 'approved'``.
Everything else here is the reviewer's side: storing a new image as pending,
approving or rejecting it (reviewer or admin role only, once, audit-logged), and
the edit path, which sends a changed image back to pending. The database backs
the gate too: a trigger (migration 0002) refuses suite items whose synthetic
image is not approved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.audit import write_audit
from pipeline.db.models import SuiteItemRow, SyntheticImageRow, UserRow, utcnow
from pipeline.errors import QCError, ReviewRequired
from pipeline.images import decode_image, encode_png
from pipeline.storage import ImageStore
from pipeline.types import ReviewStatus, SyntheticImage

REVIEWER_ROLES = frozenset({"reviewer", "admin"})


class ReviewerRoleRequired(ReviewRequired):
    """A review decision was asked of a user who is unknown or lacks the reviewer role."""


class AlreadyReviewed(ReviewRequired):
    """A decision was asked for an image that already has one (edit it to review it again)."""


class SyntheticImageNotFound(QCError):
    """No synthetic image has the given id."""


@dataclass(frozen=True, slots=True)
class SyntheticImageRecord:
    """A stored synthetic image: where its pixels and mask are, how it was made, its review state."""

    id: int
    sha256: str
    mask_sha256: str
    defect_class: str
    generator: str
    model_version: str
    seed: int
    conditioning: dict[str, Any]
    source_image_sha256: str
    status: ReviewStatus
    reviewed_by: str | None
    reviewed_at: datetime | None
    created_at: datetime


def _record(row: SyntheticImageRow) -> SyntheticImageRecord:
    return SyntheticImageRecord(
        id=row.id,
        sha256=row.sha256,
        mask_sha256=row.mask_sha256,
        defect_class=row.defect_class,
        generator=row.generator,
        model_version=row.model_version,
        seed=row.seed,
        conditioning=dict(row.conditioning),
        source_image_sha256=row.source_image_sha256,
        status=ReviewStatus(row.status),
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        created_at=row.created_at,
    )


def approved_synthetic_images(
    session: Session, *, defect_class: str | None = None, ids: Sequence[int] | None = None
) -> list[SyntheticImageRecord]:
    """The approved synthetic images (optionally of one class), oldest first: the only way to use them.

    With ``ids``, exactly those images are returned, and ``ReviewRequired`` is
    raised naming every one that is missing or not approved, so a caller that
    was handed ids (a suite definition, a training request) cannot slip a
    pending or rejected image through.
    """
    stmt = select(SyntheticImageRow).where(SyntheticImageRow.status == ReviewStatus.APPROVED.value)
    if defect_class is not None:
        stmt = stmt.where(SyntheticImageRow.defect_class == defect_class)
    if ids is not None:
        stmt = stmt.where(SyntheticImageRow.id.in_(list(ids)))
    records = [_record(r) for r in session.scalars(stmt.order_by(SyntheticImageRow.id))]
    if ids is not None:
        refused = sorted(set(ids) - {r.id for r in records})
        if refused:
            raise ReviewRequired(
                f"synthetic images {refused} are not approved"
                + (f" as class {defect_class!r}" if defect_class is not None else "")
                + ": only images a reviewer approved may be used (see `qcflow review list`)"
            )
    return records


def load_synthetic_pixels(store: ImageStore, record: SyntheticImageRecord) -> tuple[np.ndarray, np.ndarray]:
    """The BGR pixels and bool mask of a record (take records from ``approved_synthetic_images``)."""
    pixels = decode_image(store.get(record.sha256), f"synthetic image {record.id}")
    mask = decode_image(store.get(record.mask_sha256), f"mask of synthetic image {record.id}")
    return pixels, mask[..., 0] > 127


def export_training_set(
    session: Session,
    store: ImageStore,
    out: Path,
    *,
    defect_class: str | None = None,
    ids: Sequence[int] | None = None,
) -> list[Path]:
    """Write approved images into ``out`` in MVTec layout (``test/<class>/syn-<id>.png`` + mask) to train on.

    Selection is ``approved_synthetic_images``: with ``ids``, any pending or
    rejected one is refused before anything is written.
    """
    written = []
    for record in approved_synthetic_images(session, defect_class=defect_class, ids=ids):
        pixels, mask = load_synthetic_pixels(store, record)
        image_path = out / "test" / record.defect_class / f"syn-{record.id}.png"
        mask_path = out / "ground_truth" / record.defect_class / f"syn-{record.id}_mask.png"
        for path, data in ((image_path, encode_png(pixels)), (mask_path, _mask_png(mask))):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        written.append(image_path)
    return written


def review_queue(session: Session, *, limit: int = 100) -> list[SyntheticImageRecord]:
    """Pending images for reviewers, most suspicious pre-screen first (never for use)."""
    rows = session.scalars(
        select(SyntheticImageRow)
        .where(SyntheticImageRow.status == ReviewStatus.PENDING.value)
        .order_by(SyntheticImageRow.id)
    )
    records = [_record(r) for r in rows]
    records.sort(key=lambda r: float(r.conditioning.get("prescreen", {}).get("priority", 0.0)), reverse=True)
    return records[:limit]


def get_synthetic(session: Session, image_id: int) -> SyntheticImageRecord:
    """One image by id, whatever its status (for reviewers to look at, not to use)."""
    return _record(_row(session, image_id))


def _row(session: Session, image_id: int) -> SyntheticImageRow:
    row = session.get(SyntheticImageRow, image_id)
    if row is None:
        raise SyntheticImageNotFound(f"no synthetic image with id {image_id}")
    return row


def _mask_png(mask: np.ndarray) -> bytes:
    return encode_png(np.where(mask.astype(bool), 255, 0).astype(np.uint8))


def _store_pixels(store: ImageStore, pixels: np.ndarray, mask: np.ndarray) -> tuple[str, str]:
    return store.put(encode_png(pixels)), store.put(_mask_png(mask))


def record_synthetic(session: Session, store: ImageStore, image: SyntheticImage) -> int:
    """Store a generated image and its mask, and add it as pending; returns its id (flushed, not committed).

    Whatever status the object carries, the row starts pending: only
    ``approve``/``reject`` make a decision. The same pixels generated again
    (same seed and inputs) are the same image: its existing id is returned,
    with its review status unchanged.
    """
    sha, mask_sha = _store_pixels(store, image.pixels, image.mask)
    existing = session.scalar(select(SyntheticImageRow.id).where(SyntheticImageRow.sha256 == sha))
    if existing is not None:
        return existing
    row = SyntheticImageRow(
        sha256=sha,
        mask_sha256=mask_sha,
        defect_class=image.defect_class,
        generator=image.generator,
        model_version=image.model_version,
        seed=image.seed,
        conditioning=dict(image.conditioning),
        source_image_sha256=image.source_image_sha256,
        status=ReviewStatus.PENDING.value,
    )
    session.add(row)
    session.flush()
    return row.id


def _require_reviewer(session: Session, user: str) -> None:
    role = session.scalar(select(UserRow.role).where(UserRow.name == user))
    if role is None:
        raise ReviewerRoleRequired(f"user {user!r} is not registered; only reviewers or admins may review")
    if role not in REVIEWER_ROLES:
        raise ReviewerRoleRequired(
            f"user {user!r} has role {role!r}; reviewing needs one of {sorted(REVIEWER_ROLES)}"
        )


def _decide(
    session: Session, image_id: int, user: str, reason: str, status: ReviewStatus
) -> SyntheticImageRecord:
    if not reason.strip():
        raise ValueError(f"a reason is required to set synthetic image {image_id} to {status}")
    _require_reviewer(session, user)
    row = _row(session, image_id)
    if row.status != ReviewStatus.PENDING.value:
        raise AlreadyReviewed(
            f"synthetic image {image_id} is already {row.status} by {row.reviewed_by!r} "
            f"at {row.reviewed_at}; only pending images can be decided"
        )
    before = {"status": row.status, "sha256": row.sha256}
    row.status, row.reviewed_by, row.reviewed_at = status.value, user, utcnow()
    session.flush()
    write_audit(
        session,
        user,
        f"synthetic.{status.value}",
        f"synthetic_image:{image_id}",
        before,
        {"status": row.status, "sha256": row.sha256, "reason": reason},
    )
    return _record(row)


def approve(session: Session, image_id: int, user: str, reason: str) -> SyntheticImageRecord:
    """Approve a pending image as ``user`` (reviewer or admin); audit-logged, caller commits."""
    return _decide(session, image_id, user, reason, ReviewStatus.APPROVED)


def reject(session: Session, image_id: int, user: str, reason: str) -> SyntheticImageRecord:
    """Reject a pending image as ``user`` (reviewer or admin); audit-logged, caller commits."""
    return _decide(session, image_id, user, reason, ReviewStatus.REJECTED)


def replace_synthetic_pixels(
    session: Session, store: ImageStore, image_id: int, pixels: np.ndarray, mask: np.ndarray, user: str
) -> SyntheticImageRecord:
    """Edit an image: new pixels mean a new sha256, and a new sha256 means a new review (pending).

    An image already in a suite is refused: suites are frozen, and their items
    name the approved pixels.
    """
    row = _row(session, image_id)
    in_suite = session.scalar(
        select(SuiteItemRow.suite_id).where(SuiteItemRow.synthetic_image_id == image_id)
    )
    if in_suite is not None:
        raise ReviewRequired(
            f"synthetic image {image_id} is in suite {in_suite}; suites are frozen, edit a copy"
        )
    if pixels.shape[:2] != mask.shape[:2]:
        raise ValueError(f"mask shape {mask.shape[:2]} does not match image {pixels.shape[:2]}")
    sha, mask_sha = _store_pixels(store, pixels, mask)
    if (sha, mask_sha) == (row.sha256, row.mask_sha256):
        return _record(row)
    before = {"status": row.status, "sha256": row.sha256, "mask_sha256": row.mask_sha256}
    row.sha256, row.mask_sha256 = sha, mask_sha
    row.status, row.reviewed_by, row.reviewed_at = ReviewStatus.PENDING.value, None, None
    session.flush()
    write_audit(
        session,
        user,
        "synthetic.edit",
        f"synthetic_image:{image_id}",
        before,
        {"status": row.status, "sha256": sha, "mask_sha256": mask_sha},
    )
    return _record(row)
