"""Image retention: remove the pictures of old, passed frames from the store; keep every row.

Each inspection stores its frame and a heat map (about 150 KB together for a 256 px frame), so a
line that runs all day fills a disk. Retention removes, for frames accepted longer ago than the
chosen number of days, the stored frame and its heat maps, but only where nothing may still need
the picture:

- every inspection of the frame PASSED and no person reviewed any of them (FAIL and REVIEW frames,
  and reviewed ones, are the evidence behind decisions and stay);
- no test-suite item and no synthetic image (as image, mask or base image) uses the same bytes;
- no other, kept inspection shares the heat map.

The frame, inspection and finding rows stay, so counts, scores, trends and reports are unchanged;
the frame row records when its picture went (``image_pruned_at``) and each pass writes an audit
entry. A chunk's marks are written only where the frame is still prunable at that moment, and
committed before the marked frames' files are deleted: an interrupted pass leaves at most one
chunk's files behind, which take disk space but mislead no one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, CompoundSelect, exists, select, union, update
from sqlalchemy.orm import Session

from pipeline.audit import write_audit
from pipeline.config import load_app_config
from pipeline.db.models import (
    FrameRow,
    InspectionReviewRow,
    InspectionRow,
    SuiteItemRow,
    SyntheticImageRow,
    utcnow,
)
from pipeline.errors import ConfigError
from pipeline.inspection import Workspace
from pipeline.storage import ImageStore
from pipeline.types import Decision

log = logging.getLogger(__name__)

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class PruneSummary:
    frames: int  # frames whose picture was (or, in a dry run, would be) removed
    heatmaps: int
    bytes_freed: int
    kept_in_use: int  # old passed frames kept because a suite or synthetic image uses their bytes
    cutoff: datetime
    dry_run: bool


@dataclass(frozen=True, slots=True)
class _Chunk:
    pictures: dict[int, list[str]]  # frame id -> its picture and heat maps to remove
    kept_in_use: int


def retention_days(ws: Workspace, given: float | None) -> float:
    """``given``, else the installation's ``retention.keep_passed_images_days``."""
    if given is not None:
        return given
    days = load_app_config(ws.config_dir).retention.keep_passed_images_days
    if days is None:
        raise ConfigError(
            f"{ws.config_dir / 'qcflow.yaml'}: retention.keep_passed_images_days is not set and no age was "
            "given: nothing says which pictures may go"
        )
    return days


def prune_images(
    ws: Workspace,
    older_than_days: float,
    *,
    by: str,
    line_id: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneSummary:
    """Remove the stored pictures of passed frames accepted more than ``older_than_days`` ago."""
    if older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    frames = heatmaps = freed = kept = 0
    after_id = 0
    while True:
        with ws.session() as session:
            shas = _candidates(session, cutoff, line_id, after_id)
            if not shas:
                break
            after_id = max(shas)
            chunk = _chunk(session, shas)
            marked = list(chunk.pictures) if dry_run else _mark_pruned(session, chunk, cutoff, by)
        pictures = [chunk.pictures[i] for i in marked]
        freed += _remove(ws.store, [d for digests in pictures for d in digests], dry_run)
        frames += len(pictures)
        heatmaps += sum(len(digests) - 1 for digests in pictures)
        kept += chunk.kept_in_use
    log.info("retention: %d frames, %d heat maps, %d bytes (dry run: %s)", frames, heatmaps, freed, dry_run)
    return PruneSummary(frames, heatmaps, freed, kept, cutoff, dry_run)


def _prunable() -> list[ColumnElement[bool]]:
    """A frame whose picture may go, age and use aside: still pictured, inspected, every
    inspection PASS, none reviewed by a person."""
    inspected = exists().where(InspectionRow.frame_id == FrameRow.id)
    not_passed = exists().where(
        InspectionRow.frame_id == FrameRow.id, InspectionRow.decision != Decision.PASS.value
    )
    reviewed = exists().where(
        InspectionRow.frame_id == FrameRow.id, InspectionReviewRow.inspection_id == InspectionRow.id
    )
    return [FrameRow.image_pruned_at.is_(None), inspected, ~not_passed, ~reviewed]


def _candidates(session: Session, cutoff: datetime, line_id: str | None, after_id: int) -> dict[int, str]:
    """The next chunk of prunable frames accepted before ``cutoff``: id -> sha256."""
    query = (
        select(FrameRow.id, FrameRow.sha256)
        .where(FrameRow.id > after_id, FrameRow.created_at < cutoff, *_prunable())
        .order_by(FrameRow.id)
        .limit(CHUNK)
    )
    if line_id is not None:
        query = query.where(FrameRow.line_id == line_id)
    return {i: sha for i, sha in session.execute(query)}


def _chunk(session: Session, shas: dict[int, str]) -> _Chunk:
    ids = list(shas)
    heat = session.execute(
        select(InspectionRow.frame_id, InspectionRow.heatmap_sha256).where(InspectionRow.frame_id.in_(ids))
    ).tuples()
    heat_by_frame: dict[int, set[str]] = {}
    for frame_id, digest in heat:
        if digest is not None:
            heat_by_frame.setdefault(frame_id, set()).add(digest)
    in_use = _in_use(session, set(shas.values()), ids)
    frame_ids = [i for i in ids if shas[i] not in in_use]
    shared = _in_use(session, {d for i in frame_ids for d in heat_by_frame.get(i, ())}, frame_ids)
    pictures = {i: [shas[i], *sorted(heat_by_frame.get(i, set()) - shared)] for i in frame_ids}
    return _Chunk(pictures, kept_in_use=len(ids) - len(frame_ids))


def _in_use(session: Session, digests: set[str], pruned_frames: list[int]) -> set[str]:
    """Those of ``digests`` that a suite item, a synthetic image or a kept inspection still shows."""
    if not digests:
        return set()
    wanted = list(digests)
    users: CompoundSelect = union(
        select(SuiteItemRow.image_sha256.label("d")).where(SuiteItemRow.image_sha256.in_(wanted)),
        select(SuiteItemRow.mask_sha256).where(SuiteItemRow.mask_sha256.in_(wanted)),
        select(SyntheticImageRow.sha256).where(SyntheticImageRow.sha256.in_(wanted)),
        select(SyntheticImageRow.mask_sha256).where(SyntheticImageRow.mask_sha256.in_(wanted)),
        select(SyntheticImageRow.source_image_sha256).where(
            SyntheticImageRow.source_image_sha256.in_(wanted)
        ),
        select(InspectionRow.heatmap_sha256).where(
            InspectionRow.heatmap_sha256.in_(wanted), InspectionRow.frame_id.not_in(pruned_frames)
        ),
    )
    return set(session.scalars(select(users.subquery().c.d)))


def _mark_pruned(session: Session, chunk: _Chunk, cutoff: datetime, by: str) -> list[int]:
    """Mark the chunk's frames that are still prunable now (a decision or review may have come in
    since they were chosen), audit, and commit before any file goes; the ids marked."""
    if not chunk.pictures:
        return []
    marked = list(
        session.scalars(
            update(FrameRow)
            .where(FrameRow.id.in_(list(chunk.pictures)), *_prunable())
            .values(image_pruned_at=utcnow())
            .returning(FrameRow.id)
        )
    )
    if marked:
        heatmaps = sum(len(chunk.pictures[i]) - 1 for i in marked)
        done = {"frames": len(marked), "heatmaps": heatmaps, "cutoff": cutoff.isoformat()}
        write_audit(session, by, "images.prune", f"frames:{min(marked)}-{max(marked)}", None, done)
    session.commit()
    return marked


def _remove(store: ImageStore, digests: list[str], dry_run: bool) -> int:
    if dry_run:
        return sum(store.size_of(d) for d in digests)
    return sum(store.remove(d) for d in digests)
