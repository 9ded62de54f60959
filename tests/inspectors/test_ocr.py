"""Label OCR on parts the simulator printed itself."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

import inspectors.ocr as ocr_module
from inspectors.ocr import (
    PRINT_CONTRAST,
    TEXT_MISMATCH,
    TEXT_MISSING,
    TEXT_OK,
    TEXT_POOR_PRINT,
    TEXT_UNREADABLE,
    LabelOcrInspector,
    Reading,
    print_contrast,
)
from pipeline.images import encode_png
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import Frame, sha256_hex

SIM = SimulationSettings(size=320, seed=21)
ROI = (0.25, 0.62, 0.5, 0.3)
PATTERN = r"[A-Z][0-9]-[0-9]{4}"
MIN_PRINT_CONTRAST = 0.8  # the demo line's: clean print measures 0.84-0.86, smeared 0.75-0.78


def _frame(image: np.ndarray) -> Frame:
    data = encode_png(image)
    return Frame(image, "t", "cam1", datetime.now(UTC), sha256_hex(data), "test://", data)


@pytest.fixture(scope="module")
def ocr() -> LabelOcrInspector:
    return LabelOcrInspector(roi=ROI, pattern=PATTERN, min_print_contrast=MIN_PRINT_CONTRAST)


def test_reads_the_printed_lot_codes(ocr: LabelOcrInspector) -> None:
    parts = [render_part(SIM, i, defect=None) for i in range(12)]
    findings = ocr.inspect([_frame(p.image) for p in parts])
    read = [f[0].text for f in findings]
    correct = sum(r == p.lot_code for r, p in zip(read, parts, strict=True))
    assert correct >= 11, list(zip(read, [p.lot_code for p in parts], strict=True))
    labels = [f[0].label for f in findings]
    assert labels.count(TEXT_OK) >= 11, labels  # a rare doubtful character sends a clean code to review
    assert all(r == p.lot_code for r, p, label in zip(read, parts, labels, strict=True) if label == TEXT_OK)
    box = findings[0][0].region
    assert box is not None and box.y >= int(ROI[1] * 320)  # frame coordinates, inside the ROI


def test_flags_missing_and_smeared_print(ocr: LabelOcrInspector) -> None:
    missing = [render_part(SIM, i, defect="missing_print") for i in range(4)]
    smeared = [render_part(SIM, i, defect="smeared_print") for i in range(12)]
    labels_missing = [f[0].label for f in ocr.inspect([_frame(p.image) for p in missing])]
    readings = [ocr.read(p.image) for p in smeared]
    assert labels_missing == [TEXT_MISSING] * 4
    # a smeared code never passes, whether it was misread into a well-formed code or read right
    assert TEXT_OK not in [ocr.label(r) for r in readings]
    # most smeared codes are still found and read as faint or smeared, a failure of their own
    assert [ocr.label(r) for r in readings].count(TEXT_POOR_PRINT) >= 6


def test_print_contrast_is_recorded_when_the_line_sets_a_minimum(ocr: LabelOcrInspector) -> None:
    frame = _frame(render_part(SIM, 0, defect=None).image)
    reading, contrast = ocr.inspect([frame])[0]
    assert reading.label == TEXT_OK
    assert contrast.label == PRINT_CONTRAST and contrast.score is not None and contrast.score > 0.8
    unchecked = LabelOcrInspector(roi=ROI, pattern=PATTERN)
    assert [f.label for f in unchecked.inspect([frame])[0]] == [TEXT_OK]


def test_print_contrast_of_dark_and_of_faded_print() -> None:
    label = np.full((40, 120, 3), 200, np.uint8)
    dark, faded = label.copy(), label.copy()
    cv2.putText(dark, "A1-2345", (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (40, 40, 40), 2)
    cv2.putText(faded, "A1-2345", (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (120, 120, 120), 2)
    box = np.array([[0, 0], [119, 0], [119, 39], [0, 39]])
    assert print_contrast(dark, box) == pytest.approx((200 - 40) / 200, abs=0.02)
    assert print_contrast(faded, box) == pytest.approx((200 - 120) / 200, abs=0.02)
    assert print_contrast(dark, np.array([[50, 50], [60, 50], [60, 60]])) is None  # box outside the crop


class _Output:
    """RapidOCR's result for two detected lines: a bolt hole read as 'O', then the code."""

    txts = ("O", "U1-3542")
    scores = (0.51, 0.97)
    boxes = np.array([[[84, 0], [101, 0], [101, 21], [84, 21]], [[0, 30], [80, 30], [80, 50], [0, 50]]])
    word_results = (
        (("O", 0.51, None),),
        tuple((c, 0.99 if c != "5" else 0.7, None) for c in "U1-3542"),
    )


def test_the_code_is_the_line_that_matches_and_its_weakest_character_counts() -> None:
    lines = ocr_module._lines(_Output())
    assert [line.char_scores for line in lines][0] == (0.51,)
    with_pattern = LabelOcrInspector(pattern=PATTERN, min_confidence=0.6)
    chosen = with_pattern._choose(lines)
    assert (chosen.text, min(chosen.char_scores)) == ("U1-3542", 0.7)  # not 'O U1-3542': no mismatch
    no_pattern = LabelOcrInspector()
    assert no_pattern._choose(lines).text == "O U1-3542"
    # the line's mean (0.96) would pass a minimum of 0.8; its weakest character (0.7) does not
    assert LabelOcrInspector(pattern=PATTERN).label(Reading("U1-3542", 0.7, None, 0.85)) == TEXT_UNREADABLE


def test_poor_print_fails_before_the_reading_is_judged() -> None:
    strict = LabelOcrInspector(pattern=PATTERN, min_print_contrast=0.8)
    assert strict.label(Reading("A1-2345", 0.99, None, 0.76)) == TEXT_POOR_PRINT
    assert strict.label(Reading("A1-2345", 0.99, None, 0.85)) == TEXT_OK
    assert strict.label(Reading("", 0.0, None, None)) == TEXT_MISSING


def test_pattern_mismatch_is_flagged() -> None:
    strict = LabelOcrInspector(roi=ROI, pattern=r"ZZ-[0-9]{4}")
    finding = strict.inspect([_frame(render_part(SIM, 0, defect=None).image)])[0][0]
    assert finding.label == TEXT_MISMATCH and finding.text


def test_blank_image_reads_nothing(ocr: LabelOcrInspector) -> None:
    finding = ocr.inspect([_frame(np.full((200, 200, 3), 128, np.uint8))])[0][0]
    assert finding.label == TEXT_MISSING and finding.region is None


def test_reads_from_several_threads_at_once(ocr: LabelOcrInspector, monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    make = ocr_module._engine
    monkeypatch.setattr(ocr_module, "_engine", lambda threads: made.append(1) or make(threads))
    parts = [render_part(SIM, i, defect=None) for i in range(8)]
    start = threading.Barrier(4)

    def read(part_index: int) -> str:
        start.wait()  # four reads begin together
        return ocr.read(parts[part_index].image).text

    with ThreadPoolExecutor(4) as pool:
        read_codes = list(pool.map(read, range(4)))
    assert read_codes == [p.lot_code for p in parts[:4]]
    # reads at once took engines of their own (made here) beside the inspector's first one; never more
    assert 1 <= len(made) <= 3
    sequential = [ocr.read(p.image).text for p in parts[4:]]
    assert sequential == [p.lot_code for p in parts[4:]]
