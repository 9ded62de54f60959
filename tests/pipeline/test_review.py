"""The review gate: every path that could use an unapproved synthetic image is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.audit import list_audit
from pipeline.db.models import SuiteItemRow, SuiteRow, SyntheticImageRow, UserRow
from pipeline.errors import ReviewRequired
from pipeline.review import (
    AlreadyReviewed,
    ReviewerRoleRequired,
    approve,
    approved_synthetic_images,
    get_synthetic,
    load_synthetic_pixels,
    record_synthetic,
    reject,
    replace_synthetic_pixels,
    review_queue,
)
from pipeline.storage import ImageStore
from pipeline.types import ReviewStatus, SyntheticImage, sha256_hex


def _synthetic(n: int, defect_class: str = "scratch", priority: float = 0.0) -> SyntheticImage:
    pixels = np.full((16, 16, 3), n, dtype=np.uint8)
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:8, 4 : 4 + n % 8 + 1] = True
    return SyntheticImage(
        pixels=pixels,
        mask=mask,
        defect_class=defect_class,
        generator="test-gen",
        model_version="v1",
        seed=n,
        conditioning={"steps": 2, "guidance": 1.0, "prescreen": {"priority": priority}},
        source_image_sha256=sha256_hex(f"source-{n}".encode()),
    )


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture
def session(db_session: Session) -> Session:
    """A database with a reviewer, an admin and an operator."""
    for name, role in [("rita", "reviewer"), ("ada", "admin"), ("otto", "operator")]:
        db_session.add(UserRow(name=name, role=role, password_hash="x"))
    db_session.flush()
    return db_session


def _add_to_suite(session: Session, image_id: int, sha256: str | None = None) -> None:
    suite = session.scalar(select(SuiteRow).where(SuiteRow.name == "s1"))
    if suite is None:
        suite = SuiteRow(name="s1")
        session.add(suite)
        session.flush()
    row = session.get(SyntheticImageRow, image_id)
    assert row is not None
    with session.begin_nested():
        session.add(
            SuiteItemRow(
                suite_id=suite.id,
                image_sha256=sha256 or row.sha256,
                label="defect",
                defect_class=row.defect_class,
                synthetic_image_id=image_id,
            )
        )
        session.flush()


def test_recorded_images_start_pending_and_only_approved_are_selected(
    session: Session, store: ImageStore
) -> None:
    pending = record_synthetic(session, store, _synthetic(1))
    approved = record_synthetic(session, store, _synthetic(2))
    rejected = record_synthetic(session, store, _synthetic(3))
    other_class = record_synthetic(session, store, _synthetic(4, defect_class="crack"))
    approve(session, approved, "rita", "looks real")
    reject(session, rejected, "ada", "blurry")
    approve(session, other_class, "rita", "fine")

    assert get_synthetic(session, pending).status is ReviewStatus.PENDING
    assert [r.id for r in approved_synthetic_images(session)] == [approved, other_class]
    assert [r.id for r in approved_synthetic_images(session, defect_class="scratch")] == [approved]
    record = approved_synthetic_images(session, defect_class="scratch")[0]
    pixels, mask = load_synthetic_pixels(store, record)
    assert pixels[0, 0, 0] == 2 and mask.sum() == 4 * 3


def test_selection_by_ids_refuses_pending_rejected_and_unknown(session: Session, store: ImageStore) -> None:
    pending = record_synthetic(session, store, _synthetic(1))
    approved = record_synthetic(session, store, _synthetic(2))
    rejected = record_synthetic(session, store, _synthetic(3))
    approve(session, approved, "rita", "ok")
    reject(session, rejected, "rita", "no")

    assert [r.id for r in approved_synthetic_images(session, ids=[approved])] == [approved]
    with pytest.raises(ReviewRequired, match=rf"\[{pending}, {rejected}, 999\] are not approved"):
        approved_synthetic_images(session, ids=[approved, pending, rejected, 999])
    with pytest.raises(ReviewRequired, match="as class 'crack'"):
        approved_synthetic_images(session, defect_class="crack", ids=[approved])


def test_status_given_by_the_caller_is_ignored_when_recording(session: Session, store: ImageStore) -> None:
    forged = replace(_synthetic(5), status=ReviewStatus.APPROVED, reviewed_by="me")
    image_id = record_synthetic(session, store, forged)
    assert get_synthetic(session, image_id).status is ReviewStatus.PENDING
    assert approved_synthetic_images(session) == []


@pytest.mark.parametrize(
    ("user", "message"), [("otto", "'otto' has role 'operator'"), ("eve", "'eve' is not registered")]
)
def test_only_reviewers_and_admins_may_decide(
    session: Session, store: ImageStore, user: str, message: str
) -> None:
    image_id = record_synthetic(session, store, _synthetic(1))
    with pytest.raises(ReviewerRoleRequired, match=message):
        approve(session, image_id, user, "trust me")
    with pytest.raises(ReviewerRoleRequired, match=message):
        reject(session, image_id, user, "no")
    assert get_synthetic(session, image_id).status is ReviewStatus.PENDING
    assert list_audit(session) == []


def test_a_decision_is_made_once_and_audit_logged(session: Session, store: ImageStore) -> None:
    image_id = record_synthetic(session, store, _synthetic(1))
    with pytest.raises(ValueError, match="reason is required"):
        approve(session, image_id, "rita", "  ")
    record = approve(session, image_id, "rita", "crisp scratch")
    assert record.reviewed_by == "rita" and record.reviewed_at is not None
    with pytest.raises(AlreadyReviewed, match="already approved by 'rita'"):
        approve(session, image_id, "ada", "again")
    with pytest.raises(AlreadyReviewed):
        reject(session, image_id, "ada", "changed my mind")

    (entry,) = list_audit(session, target=f"synthetic_image:{image_id}")
    assert entry.user_name == "rita" and entry.action == "synthetic.approved"
    assert entry.before == {"status": "pending", "sha256": record.sha256}
    assert entry.after is not None and entry.after["reason"] == "crisp scratch"


def test_editing_an_approved_image_sends_it_back_to_pending(session: Session, store: ImageStore) -> None:
    image_id = record_synthetic(session, store, _synthetic(1))
    old = approve(session, image_id, "rita", "ok")
    pixels, mask = load_synthetic_pixels(store, old)
    pixels[0, 0] = 255
    edited = replace_synthetic_pixels(session, store, image_id, pixels, mask, "otto")

    assert edited.sha256 != old.sha256 and edited.status is ReviewStatus.PENDING
    assert edited.reviewed_by is None
    assert approved_synthetic_images(session) == []
    assert list_audit(session, target=f"synthetic_image:{image_id}")[0].action == "synthetic.edit"
    assert approve(session, image_id, "ada", "re-checked").status is ReviewStatus.APPROVED


def test_review_queue_lists_pending_by_prescreen_priority(session: Session, store: ImageStore) -> None:
    low = record_synthetic(session, store, _synthetic(1, priority=0.1))
    high = record_synthetic(session, store, _synthetic(2, priority=0.9))
    decided = record_synthetic(session, store, _synthetic(3, priority=1.0))
    reject(session, decided, "rita", "no")
    assert [r.id for r in review_queue(session)] == [high, low]


def test_database_refuses_unapproved_images_in_suites(session: Session, store: ImageStore) -> None:
    pending = record_synthetic(session, store, _synthetic(1))
    rejected = record_synthetic(session, store, _synthetic(2))
    approved = record_synthetic(session, store, _synthetic(3))
    reject(session, rejected, "rita", "no")
    approve(session, approved, "rita", "ok")

    for image_id in (pending, rejected):
        with pytest.raises(IntegrityError, match="review gate"):
            _add_to_suite(session, image_id)
    with pytest.raises(IntegrityError, match="review gate"):
        _add_to_suite(session, approved, sha256=sha256_hex(b"other pixels"))
    _add_to_suite(session, approved)
    assert session.scalar(select(SuiteItemRow.synthetic_image_id)) == approved


def test_an_image_held_by_a_suite_stays_approved(session: Session, store: ImageStore) -> None:
    image_id = record_synthetic(session, store, _synthetic(1))
    record = approve(session, image_id, "rita", "ok")
    _add_to_suite(session, image_id)

    pixels, mask = load_synthetic_pixels(store, record)
    with pytest.raises(ReviewRequired, match="suites are frozen"):
        replace_synthetic_pixels(session, store, image_id, pixels + 1, mask, "rita")
    row = session.get(SyntheticImageRow, image_id)
    assert row is not None
    with pytest.raises(IntegrityError, match="review gate"), session.begin_nested():
        row.status = "pending"
        session.flush()
