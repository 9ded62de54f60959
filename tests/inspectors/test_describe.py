"""Grounded descriptions: only what the findings say, positions from geometry."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from inspectors.describe import FindingsDescriber, part_geometry, position_words
from pipeline.images import encode_png
from pipeline.types import Finding, FindingKind, Frame, Region, sha256_hex


def _disc_frame(size: int = 200) -> Frame:
    image = np.full((size, size, 3), 30, np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, (180, 180, 180), -1)
    data = encode_png(image)
    return Frame(image, "t", "cam1", datetime.now(UTC), sha256_hex(data), "test://", data)


def test_part_geometry_finds_the_disc() -> None:
    cx, cy, r = part_geometry(_disc_frame().pixels)
    assert (cx, cy) == pytest.approx((100, 100), abs=2) and r == pytest.approx(66, abs=3)


@pytest.mark.parametrize(
    ("box", "words"),
    [
        ((40, 40, 10, 10), "upper-left of the part"),
        ((150, 95, 10, 10), "right of the part, near the rim"),
        ((95, 140, 10, 10), "bottom of the part"),
        ((97, 97, 6, 6), "at the centre"),
    ],
)
def test_position_words(box: tuple[int, int, int, int], words: str) -> None:
    region = Region(*box, area_px=box[2] * box[3])
    assert words in position_words(region, (100.0, 100.0, 66.0))


def test_sentence_uses_only_the_findings() -> None:
    frame = _disc_frame()
    region = Region(60, 60, 20, 8, area_px=100, mm_per_px=0.2)
    findings = [
        Finding("anomaly", "v1", FindingKind.ANOMALY, score=30.0, label="anomaly"),
        Finding("anomaly", "v1", FindingKind.ANOMALY, score=29.0, label="anomaly_region", region=region),
        Finding("ocr", "r3", FindingKind.TEXT, score=0.99, label="text_ok", text="A7-2291"),
    ]
    sentence = FindingsDescriber().describe(frame, findings).text
    assert (
        sentence == "Anomaly, 4.0 mm long, upper-left of the part, mid-radius; "
        "lot code 'A7-2291' read, matches pattern."
    )


def test_poor_print_is_described_with_its_measured_contrast() -> None:
    findings = [
        Finding("ocr", "r3", FindingKind.TEXT, score=0.97, label="text_poor_print", text="P0-5709"),
        Finding("ocr", "r3", FindingKind.TEXT, score=0.764, label="print_contrast"),
    ]
    sentence = FindingsDescriber().describe(_disc_frame(), findings).text
    assert sentence == "No anomalous region; lot code 'P0-5709' faint or smeared (print contrast 0.76)."


def test_nothing_found_says_so_and_invents_nothing() -> None:
    finding = FindingsDescriber().describe(_disc_frame(), [])
    assert finding.kind is FindingKind.DESCRIPTION
    assert finding.text == "No anomalous region."


def test_failed_specialist_is_mentioned() -> None:
    failed = Finding("ocr", "r3", FindingKind.ERROR, text="RuntimeError: boom")
    assert "not inspected by ocr" in (FindingsDescriber().describe(_disc_frame(), [failed]).text or "")
