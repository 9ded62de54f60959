"""Repository functions: idempotent recording, findings, watermarks, counts, constraints."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.db.models import (
    CameraRow,
    FindingRow,
    FrameErrorRow,
    FrameRow,
    InspectionRow,
    LineRow,
    SourceWatermarkRow,
    SyntheticImageRow,
)
from pipeline.db.repository import (
    count_frame_errors,
    decision_counts,
    ensure_camera,
    ensure_line,
    get_watermark,
    inspection_findings,
    recent_inspections,
    record_frame,
    record_frame_error,
    record_frames,
    record_inspection,
    record_inspections,
    set_watermark,
)
from pipeline.errors import StorageError
from pipeline.types import Decision, FindingKind, Frame, InspectionResult

MakeFrame = Callable[..., Frame]
MakeResult = Callable[..., InspectionResult]


def _count(session: Session, row: type) -> int:
    return session.scalar(select(func.count()).select_from(row)) or 0


def test_ensure_line_and_camera_are_idempotent_and_update(db_session: Session) -> None:
    ensure_line(db_session, "line-a", "Line A")
    ensure_line(db_session, "line-a", "Line A (renamed)")
    ensure_camera(db_session, "line-a", "cam-1", "folder:///a", None)
    ensure_camera(db_session, "line-a", "cam-1", "folder:///a", 0.1)
    ensure_camera(db_session, "line-b", "cam-1", "sim://b", None)  # registers line-b too
    db_session.commit()
    assert _count(db_session, LineRow) == 2
    assert db_session.scalar(select(LineRow.name).where(LineRow.line_id == "line-a")) == ("Line A (renamed)")
    assert _count(db_session, CameraRow) == 2
    assert db_session.scalar(select(CameraRow.mm_per_px).where(CameraRow.line_id == "line-a")) == 0.1


def test_record_frame_is_idempotent_by_sha256(db_session: Session, make_frame: MakeFrame) -> None:
    frame = make_frame(1)
    first = record_frame(db_session, frame, "store/1.png")
    again = record_frame(db_session, frame, "store/1.png")
    other = record_frame(db_session, make_frame(2), "store/2.png")
    db_session.commit()
    assert first == again != other
    assert _count(db_session, FrameRow) == 2
    stored = db_session.get_one(FrameRow, first)
    assert (stored.width, stored.height, stored.camera_id) == (12, 8, "cam-1")
    # the frame's line did not exist: it was registered, named by its id
    assert db_session.scalar(select(LineRow.name)) == "line-a"


def test_record_inspection_is_idempotent_per_config(
    db_session: Session, make_frame: MakeFrame, make_result: MakeResult
) -> None:
    frame = make_frame(1)
    frame_id = record_frame(db_session, frame, "store/1.png")
    assert record_inspection(db_session, frame_id, make_result(frame), flow_run_id="run-1")
    db_session.commit()
    # same frame, same config: nothing new, even after re-recording the frame
    assert record_frame(db_session, frame, "store/1.png") == frame_id
    assert not record_inspection(db_session, frame_id, make_result(frame, Decision.PASS))
    db_session.commit()
    assert (_count(db_session, InspectionRow), _count(db_session, FindingRow)) == (1, 2)
    # a different configuration is a different inspection
    assert record_inspection(db_session, frame_id, make_result(frame, config_hash="cfg-2"))
    db_session.commit()
    assert (_count(db_session, InspectionRow), _count(db_session, FindingRow)) == (2, 4)


def test_a_lot_of_frames_and_inspections_is_recorded_together(
    db_session: Session, make_frame: MakeFrame, make_result: MakeResult
) -> None:
    frames = [make_frame(i) for i in range(4)]
    early = record_frame(db_session, frames[0], "store/0.png")
    assert record_inspection(db_session, early, make_result(frames[0]))
    # frame 2 appears twice in the lot: one row, one id
    lot = [*frames, frames[2]]
    ids = record_frames(db_session, [(f, f"store/{i}.png") for i, f in enumerate(lot)])
    assert ids[0] == early and ids[2] == ids[4] and len(set(ids)) == 4
    scores = [0.1, 0.2, 0.3, 0.4, 0.3]
    triples = zip(ids, lot, scores, strict=True)
    recorded = record_inspections(
        db_session,
        [(i, make_result(f, score=s), f"{n}" * 64) for n, (i, f, s) in enumerate(triples)],
        flow_run_id="lot",
    )
    db_session.commit()
    # frame 0 was inspected before; the repeat of frame 2 is not a second inspection
    assert recorded == [False, True, True, True, False]
    assert (_count(db_session, FrameRow), _count(db_session, InspectionRow)) == (4, 4)
    assert _count(db_session, FindingRow) == 4 * 2
    by_frame = {r.frame_sha256: r for r in recent_inspections(db_session, "line-a")}
    for n in (1, 2, 3):
        record = by_frame[frames[n].sha256]
        assert (record.anomaly_score, record.heatmap_sha256) == (pytest.approx(scores[n]), f"{n}" * 64)
        anomaly, _ = inspection_findings(db_session, record.id)
        assert anomaly.score == pytest.approx(scores[n])  # findings belong to their own inspection
    assert record_frames(db_session, []) == [] and record_inspections(db_session, []) == []


def test_inspection_fields_and_findings_with_regions(
    db_session: Session, make_frame: MakeFrame, make_result: MakeResult
) -> None:
    frame = make_frame(3)
    frame_id = record_frame(db_session, frame, "store/3.png")
    record_inspection(
        db_session,
        frame_id,
        make_result(frame, score=0.75),
        flow_run_id="r",
        heatmap_sha256="h" * 64,
    )
    db_session.commit()
    [record] = recent_inspections(db_session, "line-a")
    assert record.frame_sha256 == frame.sha256
    assert record.decision is Decision.FAIL
    assert record.anomaly_score == pytest.approx(0.75)
    assert record.model_versions == {"anomaly": "pc-1.2", "ocr": "ocr-0.3"}
    assert record.timings_ms == {"anomaly": 3.5, "ocr": 1.25}
    assert record.providers == ("CPUExecutionProvider",)
    assert (record.flow_run_id, record.heatmap_sha256) == ("r", "h" * 64)
    assert record.captured_at == frame.captured_at
    assert record.store_path == "store/3.png"

    row = db_session.scalars(select(FindingRow).where(FindingRow.specialist == "anomaly")).one()
    assert (row.box_x, row.box_y, row.box_w, row.box_h, row.area_px) == (2, 1, 4, 3, 10)
    assert row.length_mm == pytest.approx(2.0)
    assert row.area_mm2 == pytest.approx(2.5)

    anomaly, ocr = inspection_findings(db_session, record.id)
    assert anomaly.kind is FindingKind.ANOMALY and anomaly.region is not None
    assert anomaly.region.box == (2, 1, 4, 3)
    assert anomaly.region.area_mm2 == pytest.approx(2.5)
    assert (ocr.kind, ocr.text, ocr.region) == (FindingKind.TEXT, "LOT 42", None)


def test_record_inspection_checks_the_frame(
    db_session: Session, make_frame: MakeFrame, make_result: MakeResult
) -> None:
    with pytest.raises(StorageError, match="no frame with id 999"):
        record_inspection(db_session, 999, make_result(make_frame(1)))
    frame_id = record_frame(db_session, make_frame(1), "store/1.png")
    with pytest.raises(ValueError, match="inspection is for frame"):
        record_inspection(db_session, frame_id, make_result(make_frame(2)))


def test_decision_check_constraint_rejects_bogus_decision(db_session: Session, make_frame: MakeFrame) -> None:
    frame_id = record_frame(db_session, make_frame(1), "store/1.png")
    db_session.commit()
    db_session.add(
        InspectionRow(
            frame_id=frame_id,
            config_hash="c",
            decision="MAYBE",
            reason="",
            timings_ms={},
            providers=[],
            model_versions={},
        )
    )
    with pytest.raises(IntegrityError, match="ck_inspections_decision"):
        db_session.flush()


def test_synthetic_image_cannot_be_approved_without_a_reviewer(db_session: Session) -> None:
    db_session.add(
        SyntheticImageRow(
            sha256="a" * 64,
            mask_sha256="b" * 64,
            defect_class="scratch",
            generator="diffusion",
            model_version="sd-1",
            seed=2**40,
            conditioning={"prompt": "scratch"},
            source_image_sha256="c" * 64,
            status="approved",
        )
    )
    with pytest.raises(IntegrityError, match="ck_synthetic_images_reviewed_by"):
        db_session.flush()


def test_watermark_get_set_upsert(db_session: Session) -> None:
    key = ("line-a", "cam-1", "folder:///data/a")
    assert get_watermark(db_session, *key) is None
    set_watermark(db_session, *key, "0001.png")
    db_session.commit()
    assert get_watermark(db_session, *key) == "0001.png"
    set_watermark(db_session, *key, "0002.png")
    set_watermark(db_session, "line-a", "cam-2", "folder:///data/a", "x")
    db_session.commit()
    assert get_watermark(db_session, *key) == "0002.png"
    assert get_watermark(db_session, "line-a", "cam-2", "folder:///data/a") == "x"
    assert _count(db_session, SourceWatermarkRow) == 2


def test_decision_counts_and_recent_inspections(
    db_session: Session, make_frame: MakeFrame, make_result: MakeResult
) -> None:
    assert decision_counts(db_session) == {Decision.PASS: 0, Decision.FAIL: 0, Decision.REVIEW: 0}
    plan = [("line-a", Decision.PASS), ("line-a", Decision.PASS), ("line-a", Decision.FAIL)]
    plan += [("line-b", Decision.REVIEW)]
    for n, (line, decision) in enumerate(plan):
        frame = make_frame(n, line_id=line)
        record_inspection(db_session, record_frame(db_session, frame, f"s/{n}"), make_result(frame, decision))
    db_session.commit()
    assert decision_counts(db_session) == {Decision.PASS: 2, Decision.FAIL: 1, Decision.REVIEW: 1}
    assert decision_counts(db_session, "line-a") == {
        Decision.PASS: 2,
        Decision.FAIL: 1,
        Decision.REVIEW: 0,
    }
    assert decision_counts(db_session, "nope") == dict.fromkeys(Decision, 0)
    recent = recent_inspections(db_session, "line-a", limit=2)
    assert [r.decision for r in recent] == [Decision.FAIL, Decision.PASS]
    assert len(recent_inspections(db_session, None)) == 4


def test_frame_errors_are_recorded_and_counted(db_session: Session) -> None:
    record_frame_error(db_session, "line-a", "cam-1", "folder:///a", 7, "cannot decode PNG")
    record_frame_error(db_session, "line-a", "cam-1", "folder:///a", "b.png", "truncated")
    record_frame_error(db_session, "line-b", "cam-1", "rtsp://b", None, "timeout")
    db_session.commit()
    assert count_frame_errors(db_session) == 3
    assert count_frame_errors(db_session, "line-a") == 2
    positions = db_session.scalars(select(FrameErrorRow.position).order_by(FrameErrorRow.id))
    assert list(positions) == ["7", "b.png", None]
