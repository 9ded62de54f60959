"""Pipeline data types refuse bad values where they are made, and say where they came from."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from pipeline.errors import FrameError
from pipeline.types import (
    Decision,
    Finding,
    FindingKind,
    Frame,
    InspectionResult,
    Region,
    sha256_hex,
)

URI = "sim://press1?seed=3#17"
ENCODED = b"pretend these are png bytes"
DIGEST = hashlib.sha256(ENCODED).hexdigest()
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_frame(**changes: object) -> Frame:
    values: dict[str, object] = {
        "pixels": np.zeros((16, 24, 3), np.uint8),
        "line_id": "press1",
        "camera_id": "top",
        "captured_at": NOW,
        "sha256": DIGEST,
        "source_uri": URI,
        "encoded": ENCODED,
    }
    values.update(changes)
    return Frame(**values)  # type: ignore[arg-type]


# --- Frame -------------------------------------------------------------------------------------


def test_valid_frame_and_its_size() -> None:
    frame = make_frame()
    assert (frame.height, frame.width) == (16, 24)
    assert frame.sha256 == sha256_hex(ENCODED)
    assert ENCODED.decode() not in repr(frame)  # the bytes are kept out of logs


def test_frame_without_encoded_bytes_only_needs_a_digest() -> None:
    frame = make_frame(encoded=b"", sha256="0" * 64)
    assert frame.encoded == b""


def test_frame_accepts_any_timezone() -> None:
    tz = timezone(timedelta(hours=-5))
    assert make_frame(captured_at=datetime(2024, 1, 1, tzinfo=tz)).captured_at.utcoffset() == timedelta(
        hours=-5
    )


def test_frame_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_frame().line_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pixels", "shown"),
    [
        (np.zeros((16, 16, 3), np.float32), "float32"),
        (np.zeros((16, 16, 3), np.uint16), "uint16"),
        (np.zeros((16, 16), np.uint8), "(16, 16)"),
        (np.zeros((16, 16, 4), np.uint8), "(16, 16, 4)"),
        (np.zeros((16, 16, 1), np.uint8), "(16, 16, 1)"),
        ([[0] * 16] * 16, "list"),
    ],
    ids=["float32", "uint16", "2-D", "BGRA", "1-channel", "list"],
)
def test_bad_pixels_are_refused_naming_the_source(pixels: object, shown: str) -> None:
    with pytest.raises(FrameError) as info:
        make_frame(pixels=pixels)
    message = str(info.value)
    assert URI in message
    assert "H×W×3 uint8" in message  # what was expected
    assert shown in message  # and what came instead


@pytest.mark.parametrize("shape", [(7, 16, 3), (16, 7, 3), (0, 0, 3)])
def test_too_small_image_is_refused(shape: tuple[int, int, int]) -> None:
    with pytest.raises(FrameError, match="too small") as info:
        make_frame(pixels=np.zeros(shape, np.uint8))
    assert URI in str(info.value)


def test_smallest_allowed_image() -> None:
    assert make_frame(pixels=np.zeros((8, 8, 3), np.uint8)).height == 8


def test_naive_capture_time_is_refused() -> None:
    with pytest.raises(FrameError) as info:
        make_frame(captured_at=datetime(2024, 5, 1, 12, 0))
    assert URI in str(info.value) and "timezone-aware" in str(info.value)


def test_digest_not_matching_the_encoded_bytes_is_refused() -> None:
    with pytest.raises(FrameError) as info:
        make_frame(sha256=hashlib.sha256(b"other bytes").hexdigest())
    assert URI in str(info.value) and "does not match" in str(info.value)


@pytest.mark.parametrize("digest", ["", "abc", "0" * 63, "0" * 65])
def test_digest_of_the_wrong_length_is_refused(digest: str) -> None:
    with pytest.raises(FrameError) as info:
        make_frame(sha256=digest, encoded=b"")
    assert URI in str(info.value) and "64 hex" in str(info.value)


def test_non_hex_digest_is_refused() -> None:
    with pytest.raises(FrameError):
        make_frame(sha256="g" * 64, encoded=b"")


# --- Region --------------------------------------------------------------------------------------


def test_region_mm_conversions() -> None:
    region = Region(x=10, y=20, w=40, h=10, area_px=300, mm_per_px=0.25)
    assert region.box == (10, 20, 40, 10)
    assert region.length_mm == pytest.approx(10.0)  # longest side 40 px × 0.25 mm
    assert region.area_mm2 == pytest.approx(18.75)  # 300 px × 0.0625 mm²
    tall = Region(x=0, y=0, w=3, h=12, area_px=36, mm_per_px=2.0)
    assert tall.length_mm == pytest.approx(24.0) and tall.area_mm2 == pytest.approx(144.0)


def test_region_without_a_scale_has_no_mm() -> None:
    region = Region(x=0, y=0, w=5, h=5, area_px=25)
    assert region.length_mm is None and region.area_mm2 is None


@pytest.mark.parametrize(
    ("box", "area"),
    [((-1, 0, 5, 5), 1), ((0, -1, 5, 5), 1), ((0, 0, 0, 5), 0), ((0, 0, 5, -2), 0)],
)
def test_region_box_must_be_non_negative_with_positive_size(box: tuple[int, ...], area: int) -> None:
    with pytest.raises(ValueError, match="region box"):
        Region(*box, area_px=area)


@pytest.mark.parametrize("area", [-1, 26])
def test_region_area_must_fit_the_box(area: int) -> None:
    with pytest.raises(ValueError, match="0..25"):
        Region(x=0, y=0, w=5, h=5, area_px=area)


def test_region_area_bounds_are_inclusive() -> None:
    assert Region(x=0, y=0, w=5, h=5, area_px=0).area_px == 0
    assert Region(x=0, y=0, w=5, h=5, area_px=25).area_px == 25


# --- Finding -------------------------------------------------------------------------------------


def test_finding_with_a_float32_heatmap() -> None:
    heatmap = np.zeros((12, 20), np.float32)
    finding = Finding("anomaly", "v1", FindingKind.ANOMALY, score=0.3, heatmap=heatmap)
    assert finding.heatmap is heatmap
    # the heat map is left out of equality and repr
    assert finding == Finding("anomaly", "v1", FindingKind.ANOMALY, score=0.3)
    assert "heatmap" not in repr(finding)


@pytest.mark.parametrize(
    "heatmap",
    [np.zeros((12, 20), np.float64), np.zeros((12, 20, 1), np.float32), np.zeros(20, np.float32)],
    ids=["float64", "3-D", "1-D"],
)
def test_finding_heatmap_must_be_2d_float32(heatmap: np.ndarray) -> None:
    with pytest.raises(ValueError) as info:
        Finding("anomaly", "v1", FindingKind.ANOMALY, score=0.3, heatmap=heatmap)
    assert "2-D float32" in str(info.value)
    assert str(heatmap.dtype) in str(info.value) and str(heatmap.shape) in str(info.value)


@pytest.mark.parametrize(("name", "version"), [("", "v1"), ("anomaly", "")])
def test_finding_needs_specialist_and_version(name: str, version: str) -> None:
    with pytest.raises(ValueError, match="specialist name and a model version"):
        Finding(name, version, FindingKind.TEXT, text="A1-0001")


def test_inspection_result_anomaly_score_is_the_highest_anomaly_finding() -> None:
    findings = (
        Finding("a", "1", FindingKind.ANOMALY, score=0.2),
        Finding("b", "1", FindingKind.DEFECT_CLASS, score=0.99, label="crack"),
        Finding("c", "1", FindingKind.ANOMALY, score=0.6),
        Finding("d", "1", FindingKind.ANOMALY, score=None),
    )
    result = InspectionResult(DIGEST, findings, Decision.REVIEW, "r", {}, "cfg")
    assert result.anomaly_score == 0.6
    assert InspectionResult(DIGEST, findings[1:2], Decision.PASS, "r", {}, "cfg").anomaly_score is None
