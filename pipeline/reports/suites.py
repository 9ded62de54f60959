"""Test suites: named, labelled image sets stored by digest so a report can prove what it ran on.

Images (and masks) are copied into the workspace's content-addressed store when they
join a suite, so a suite outlives its source folder. The suite digest is a sha256 over
every item's identity (image, label, class, mask, synthetic id) in sorted order.

The review gate: synthetic images are only ever selected through
``pipeline.review.approved_synthetic_images``, and adding any item that refers to a
synthetic image is refused unless that function lists it (the database's trigger backs
this where the schema has it).

Inspections become items only when a person confirmed or overrode their decision
(``inspection_reviews``): the automatic decision is what is being tested, so it can
never be its own ground truth.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from pipeline.datasets import open_mvtec
from pipeline.db.models import (
    SUITE_LABELS,
    FrameRow,
    InspectionReviewRow,
    InspectionRow,
    SuiteItemRow,
    SuiteRow,
)
from pipeline.errors import DatasetError, ReviewRequired, StorageError
from pipeline.overrides import decision_in_force
from pipeline.review import approved_synthetic_images
from pipeline.storage import ImageStore
from pipeline.types import Decision

GOOD, DEFECT = SUITE_LABELS
MANIFEST_COLUMNS = ("path", "label", "defect_class", "mask")


@dataclass(frozen=True, slots=True)
class SuiteItem:
    """One labelled image of a suite, by digest; ``synthetic_image_id`` marks a generated image."""

    image_sha256: str
    label: str
    defect_class: str | None = None
    mask_sha256: str | None = None
    synthetic_image_id: int | None = None

    def __post_init__(self) -> None:
        if self.label not in SUITE_LABELS:
            raise ValueError(
                f"suite item {self.image_sha256[:12]}: label must be one of {SUITE_LABELS}, "
                f"got {self.label!r}"
            )
        if self.label == GOOD and (self.defect_class or self.mask_sha256):
            raise ValueError(f"suite item {self.image_sha256[:12]}: a good item has no defect class or mask")

    @property
    def is_defect(self) -> bool:
        return self.label == DEFECT

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic_image_id is not None

    def identity(self) -> str:
        return "|".join(
            str(v or "")
            for v in (
                self.image_sha256,
                self.label,
                self.defect_class,
                self.mask_sha256,
                self.synthetic_image_id,
            )
        )


@dataclass(frozen=True, slots=True)
class Suite:
    id: int
    name: str
    items: tuple[SuiteItem, ...]

    @property
    def digest(self) -> str:
        return suite_digest(self.items)


def suite_digest(items: Iterable[SuiteItem]) -> str:
    """sha256 over the items' identities, sorted: the same set gives the same digest in any order."""
    h = hashlib.sha256()
    for identity in sorted(i.identity() for i in items):
        h.update(identity.encode())
        h.update(b"\n")
    return h.hexdigest()


# --- items from folders ----------------------------------------------------


def _put_file(store: ImageStore, path: Path) -> str:
    try:
        return store.put(path.read_bytes())
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc


def items_from_mvtec(store: ImageStore, root: Path) -> list[SuiteItem]:
    """The test split of an MVTec-layout folder, copied into the store."""
    dataset = open_mvtec(root)
    return [
        SuiteItem(
            _put_file(store, item.path),
            DEFECT if item.is_defect else GOOD,
            item.defect_type,
            _put_file(store, item.mask_path) if item.mask_path else None,
        )
        for item in dataset.test
    ]


def items_from_manifest(store: ImageStore, manifest: Path) -> list[SuiteItem]:
    """A CSV with columns path,label,defect_class,mask; relative paths are from the CSV's folder."""
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
        missing = [c for c in MANIFEST_COLUMNS if c not in (rows[0] if rows else {})]
    if not rows or missing:
        raise DatasetError(
            f"{manifest}: expected a header with columns {','.join(MANIFEST_COLUMNS)} and "
            f"at least one row (missing: {missing or 'rows'})"
        )
    items = []
    for line, row in enumerate(rows, start=2):
        where = f"{manifest}:{line}"
        label = row["label"].strip()
        if label not in SUITE_LABELS:
            raise DatasetError(f"{where}: label must be one of {SUITE_LABELS}, got {label!r}")
        mask = row["mask"].strip()
        items.append(
            SuiteItem(
                _put_file(store, manifest.parent / row["path"].strip()),
                label,
                row["defect_class"].strip() or None,
                _put_file(store, manifest.parent / mask) if mask else None,
            )
        )
    return items


def items_from_data(store: ImageStore, data: Path) -> list[SuiteItem]:
    """A CSV manifest file, or a folder in MVTec layout."""
    return (
        items_from_manifest(store, data) if data.suffix.lower() == ".csv" else items_from_mvtec(store, data)
    )


def approved_synthetic_items(session: Session, defect_class: str | None = None) -> list[SuiteItem]:
    """Approved synthetic images as defect items, through the one selection function."""
    return [
        SuiteItem(image.sha256, DEFECT, image.defect_class, image.mask_sha256, image.id)
        for image in approved_synthetic_images(session, defect_class=defect_class)
    ]


def items_from_inspections(
    session: Session, store: ImageStore, line_id: str, since: datetime
) -> list[SuiteItem]:
    """Frames of ``line_id`` inspected since ``since`` whose decision a person confirmed or overrode.

    The person's decision in force is the label (FAIL: defect, PASS: good); the defect
    class is unknown. The frame bytes are already in the store (written before the rows).
    """
    stmt = (
        select(InspectionRow.id, FrameRow.sha256)
        .join(FrameRow, InspectionRow.frame_id == FrameRow.id)
        .where(
            FrameRow.line_id == line_id,
            InspectionRow.created_at >= since,
            exists().where(InspectionReviewRow.inspection_id == InspectionRow.id),
        )
        .order_by(InspectionRow.id)
    )
    items = []
    for inspection_id, frame_sha256 in session.execute(stmt).tuples():
        if not store.path_for(frame_sha256).is_file():
            raise StorageError(f"inspection {inspection_id}: frame {frame_sha256} is not in {store.root}")
        label = DEFECT if decision_in_force(session, inspection_id) is Decision.FAIL else GOOD
        items.append(SuiteItem(frame_sha256, label))
    return items


# --- suites in the database ------------------------------------------------


def require_approved(session: Session, items: Sequence[SuiteItem], where: str) -> None:
    """Refuse any synthetic item whose image is not approved now, or was approved with other pixels."""
    held = {i.synthetic_image_id: i.image_sha256 for i in items if i.synthetic_image_id is not None}
    if not held:
        return
    try:
        approved = approved_synthetic_images(session, ids=sorted(held))
    except ReviewRequired as exc:
        raise ReviewRequired(f"{where}: {exc}") from exc
    changed = [image.id for image in approved if image.sha256 != held[image.id]]
    if changed:
        raise ReviewRequired(
            f"{where}: synthetic images {changed} were approved with other pixels than the suite holds"
        )


def _suite_row(session: Session, name: str) -> SuiteRow:
    row = session.scalar(select(SuiteRow).where(SuiteRow.name == name))
    if row is None:
        known = ", ".join(session.scalars(select(SuiteRow.name).order_by(SuiteRow.name))) or "none"
        raise DatasetError(f"no suite named {name!r} (suites: {known})")
    return row


def create_suite(session: Session, name: str, items: Sequence[SuiteItem]) -> Suite:
    """A new suite holding ``items``; refuses an existing name (suites are frozen once reported on)."""
    if session.scalar(select(SuiteRow.id).where(SuiteRow.name == name)) is not None:
        raise StorageError(f"suite {name!r} already exists; add items to it or choose another name")
    session.add(SuiteRow(name=name))
    session.flush()
    return add_items(session, name, items)


def add_items(session: Session, name: str, items: Sequence[SuiteItem]) -> Suite:
    """Add items to a suite; an image already in it (same sha256) is skipped, not duplicated."""
    row = _suite_row(session, name)
    require_approved(session, items, f"suite {name!r}")
    present = set(session.scalars(select(SuiteItemRow.image_sha256).where(SuiteItemRow.suite_id == row.id)))
    for item in items:
        if item.image_sha256 in present:
            continue
        present.add(item.image_sha256)
        session.add(
            SuiteItemRow(
                suite_id=row.id,
                image_sha256=item.image_sha256,
                label=item.label,
                defect_class=item.defect_class,
                mask_sha256=item.mask_sha256,
                synthetic_image_id=item.synthetic_image_id,
            )
        )
    session.flush()
    return load_suite(session, name)


def load_suite(session: Session, name: str) -> Suite:
    row = _suite_row(session, name)
    rows = session.scalars(
        select(SuiteItemRow).where(SuiteItemRow.suite_id == row.id).order_by(SuiteItemRow.id)
    )
    items = tuple(
        SuiteItem(r.image_sha256, r.label, r.defect_class, r.mask_sha256, r.synthetic_image_id) for r in rows
    )
    return Suite(row.id, row.name, items)


@dataclass(frozen=True, slots=True)
class SuiteSummary:
    name: str
    n_items: int


def list_suites(session: Session) -> list[SuiteSummary]:
    stmt = (
        select(SuiteRow.name, func.count(SuiteItemRow.id))
        .outerjoin(SuiteItemRow, SuiteItemRow.suite_id == SuiteRow.id)
        .group_by(SuiteRow.name)
        .order_by(SuiteRow.name)
    )
    return [SuiteSummary(name, n) for name, n in session.execute(stmt).tuples()]
