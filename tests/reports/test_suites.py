"""Suites: built from folders or manifests, stored by digest, guarded by the review gate."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from pipeline.db import repository as repo
from pipeline.db.models import InspectionReviewRow, InspectionRow
from pipeline.errors import DatasetError, ReviewRequired, StorageError
from pipeline.images import decode_image, encode_png
from pipeline.inspection import Workspace
from pipeline.reports import suites
from pipeline.reports.suites import SuiteItem
from pipeline.types import Decision, Frame, InspectionResult
from tests.reports.conftest import N_GOOD, add_synthetic_image, part_image


def _create(ws: Workspace, name: str, items: list[SuiteItem]) -> suites.Suite:
    with ws.session() as session, session.begin():
        return suites.create_suite(session, name, items)


def test_suite_from_mvtec_folder_survives_the_folder_going_away(
    report_ws: Workspace, mvtec_folder: Path
) -> None:
    suite = _create(report_ws, "parts", suites.items_from_data(report_ws.store, mvtec_folder))
    shutil.rmtree(mvtec_folder)
    assert len(suite.items) == N_GOOD + 8
    classes = sorted({str(i.defect_class) for i in suite.items if i.is_defect})
    assert classes == ["crack", "spot"]
    assert sum(i.mask_sha256 is not None for i in suite.items) == 5  # only cracks have masks
    with report_ws.session() as session:
        reloaded = suites.load_suite(session, "parts")
    assert reloaded.digest == suite.digest
    for item in reloaded.items:
        assert report_ws.store.get(item.image_sha256)  # the store kept every image


def test_suite_digest_ignores_order_and_sees_any_change() -> None:
    a, b = SuiteItem("a" * 64, "good"), SuiteItem("b" * 64, "defect", "crack")
    assert suites.suite_digest([a, b]) == suites.suite_digest([b, a])
    relabelled = SuiteItem("b" * 64, "defect", "pit")
    assert suites.suite_digest([a, relabelled]) != suites.suite_digest([a, b])


def test_suite_from_csv_manifest_and_its_errors(report_ws: Workspace, mvtec_folder: Path) -> None:
    manifest = mvtec_folder / "suite.csv"
    manifest.write_text(
        "path,label,defect_class,mask\n"
        "test/good/000.png,good,,\n"
        "test/crack/001.png,defect,crack,ground_truth/crack/001_mask.png\n"
    )
    items = suites.items_from_data(report_ws.store, manifest)
    assert [(i.label, i.defect_class, i.mask_sha256 is not None) for i in items] == [
        ("good", None, False),
        ("defect", "crack", True),
    ]
    manifest.write_text("path,label,defect_class,mask\ntest/good/000.png,fine,,\n")
    with pytest.raises(DatasetError, match=r"suite.csv:2: label must be one of"):
        suites.items_from_data(report_ws.store, manifest)


def test_adding_skips_known_images_and_names_are_unique(report_ws: Workspace, mvtec_folder: Path) -> None:
    items = suites.items_from_data(report_ws.store, mvtec_folder)
    _create(report_ws, "parts", items[:5])
    with report_ws.session() as session, session.begin():
        assert len(suites.add_items(session, "parts", items).items) == len(items)
    with pytest.raises(StorageError, match="'parts' already exists"):
        _create(report_ws, "parts", items)
    with report_ws.session() as session, pytest.raises(DatasetError, match="no suite named 'other'"):
        suites.load_suite(session, "other")


def test_only_approved_synthetic_images_can_join_a_suite(report_ws: Workspace) -> None:
    approved = add_synthetic_image(report_ws, status="approved", seed=1)
    pending = add_synthetic_image(report_ws, status="pending", seed=2)
    add_synthetic_image(report_ws, status="rejected", seed=3)
    with report_ws.session() as session:
        selected = suites.approved_synthetic_items(session, "crack")
    assert [i.synthetic_image_id for i in selected] == [approved.id]
    assert selected[0].is_defect and selected[0].mask_sha256 == approved.mask_sha256
    _create(report_ws, "synthetic", selected)
    sneaked_in = SuiteItem(pending.sha256, "defect", "crack", pending.mask_sha256, pending.id)
    with (
        report_ws.session() as session,
        pytest.raises(
            ReviewRequired, match=rf"suite 'synthetic': synthetic images \[{pending.id}\] are not approved"
        ),
    ):
        suites.add_items(session, "synthetic", [sneaked_in])


def _inspected_frame(ws: Workspace, seed: int, *, reviewed_as: str | None) -> str:
    """A stored frame of line 'l1' with an automatic REVIEW decision and, optionally, a person's."""
    encoded = encode_png(part_image(np.random.default_rng(seed), contrast=50 * seed))
    frame = Frame(
        decode_image(encoded, "test"), "l1", "cam1", datetime.now(UTC), ws.store.put(encoded), "test", encoded
    )
    result = InspectionResult(frame.sha256, (), Decision.REVIEW, "in band", {}, "config-1")
    with ws.session() as session, session.begin():
        repo.record_inspection(session, repo.record_frame(session, frame, "x"), result)
        if reviewed_as is not None:
            inspection_id = session.scalar(select(InspectionRow.id).order_by(InspectionRow.id.desc()))
            session.add(
                InspectionReviewRow(
                    inspection_id=inspection_id, decision=reviewed_as, reason="seen", user_name="rita"
                )
            )
    return frame.sha256


def test_inspections_a_person_decided_become_labelled_items(report_ws: Workspace) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    failed = _inspected_frame(report_ws, 1, reviewed_as="FAIL")
    passed = _inspected_frame(report_ws, 2, reviewed_as="PASS")
    _inspected_frame(report_ws, 3, reviewed_as=None)  # nobody looked: not ground truth
    with report_ws.session() as session:
        items = suites.items_from_inspections(session, report_ws.store, "l1", before)
        later = suites.items_from_inspections(session, report_ws.store, "l1", datetime.now(UTC))
        other_line = suites.items_from_inspections(session, report_ws.store, "l2", before)
    assert [(i.image_sha256, i.label) for i in items] == [(failed, "defect"), (passed, "good")]
    assert later == [] and other_line == []
