"""Label / lot-code reading with RapidOCR (its ONNX models ship inside the wheel).

One TEXT finding per frame for the reading: ``text_ok``, ``text_mismatch`` (read, but not the
line's pattern), ``text_unreadable`` (a character's confidence below the minimum),
``text_poor_print`` (the print's contrast below the line's minimum: faint or smeared ink) or
``text_missing`` (nothing printed where the label should be). Where the line sets a minimum print
contrast, a second TEXT finding, ``print_contrast``, records the measured value.
"""

from __future__ import annotations

import importlib.metadata
import queue
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.config import load_environment
from pipeline.errors import ModelContractError
from pipeline.types import Finding, FindingKind, Frame, Region

TEXT_OK = "text_ok"
TEXT_MISMATCH = "text_mismatch"
TEXT_UNREADABLE = "text_unreadable"
TEXT_POOR_PRINT = "text_poor_print"
TEXT_MISSING = "text_missing"
PRINT_CONTRAST = "print_contrast"


def _engine(threads: int | None) -> object:
    try:
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise ModelContractError(
            "the OCR specialist needs the package 'rapidocr' (pip install 'qcflow[ocr]')"
        ) from exc
    # Small crops: cap the detector's input instead of upscaling to 736 px (5× faster, same reads).
    # Single-character results give each character's confidence (no extra cost).
    params: dict[str, object] = {
        "Global.log_level": "error",
        "Global.use_cls": False,
        "Global.return_word_box": True,
        "Global.return_single_char_box": True,
        "Det.limit_type": "max",
        "Det.limit_side_len": 320,
    }
    threads = load_environment().session_threads(threads)
    if threads is not None:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    return RapidOCR(params=params)


@dataclass(frozen=True, slots=True)
class Reading:
    """What was read in one frame."""

    text: str  # "" when nothing was found
    confidence: float  # the weakest character's: one doubtful character makes the code doubtful
    region: Region | None  # the text's box in frame pixels
    print_contrast: float | None  # (light - dark) / light grey level in that box; None without text


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    char_scores: tuple[float, ...]
    points: np.ndarray  # the detector's box corners, crop pixels


def _lines(out: object) -> list[_Line]:
    txts = out.txts or ()  # type: ignore[attr-defined]
    scores, boxes = out.scores or (), out.boxes if out.boxes is not None else ()  # type: ignore[attr-defined]
    chars = getattr(out, "word_results", None) or ((),) * len(txts)
    lines = []
    for text, score, box, line_chars in zip(txts, scores, boxes, chars, strict=False):
        per_char = tuple(float(c[1]) for c in line_chars if len(c) == 3) or (float(score),)
        lines.append(_Line(text, per_char, np.asarray(box).astype(int)))
    return lines


def _bounds(points: np.ndarray) -> tuple[int, int, int, int]:
    """x, y, w, h of the box around the detector's corner points (clipped at 0)."""
    x, y = max(0, int(points[:, 0].min())), max(0, int(points[:, 1].min()))
    return x, y, max(1, int(points[:, 0].max()) - x + 1), max(1, int(points[:, 1].max()) - y + 1)


def print_contrast(crop: np.ndarray, points: np.ndarray) -> float | None:
    """Print contrast of the text's box: (light - dark) / light, from its 97th and 3rd percentile
    grey levels. Smeared or faint ink lowers it; clean dark print on a light label sits near 0.85."""
    x, y, w, h = _bounds(points)
    box = crop[y : y + h, x : x + w]
    if box.size == 0:
        return None
    grey = cv2.cvtColor(box, cv2.COLOR_BGR2GRAY) if box.ndim == 3 else box
    dark, light = np.percentile(grey, (3, 97))
    return float((light - dark) / light) if light > 0 else 0.0


class LabelOcrInspector:
    name = "ocr"
    providers = ("CPUExecutionProvider",)

    def __init__(
        self,
        *,
        roi: tuple[float, float, float, float] | None = None,
        pattern: str | None = None,
        min_confidence: float = 0.8,
        min_print_contrast: float | None = None,
        threads: int | None = None,  # ONNX Runtime's (None: QCFLOW_INFERENCE_THREADS, else one per core)
    ) -> None:
        self.roi, self.min_confidence, self.min_print_contrast = roi, min_confidence, min_print_contrast
        self.pattern = re.compile(pattern) if pattern else None
        self.version = f"rapidocr-{importlib.metadata.version('rapidocr')}"
        # RapidOCR does not promise that an engine is thread-safe: each call takes an idle engine, or makes
        # one, so inference lanes read at once instead of queueing (as many engines as concurrent reads)
        self._threads = threads
        self._idle: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._idle.put(_engine(threads))

    def _crop(self, pixels: np.ndarray) -> tuple[np.ndarray, int, int]:
        if self.roi is None:
            return pixels, 0, 0
        h, w = pixels.shape[:2]
        x0, y0 = int(self.roi[0] * w), int(self.roi[1] * h)
        return pixels[y0 : y0 + max(1, int(self.roi[3] * h)), x0 : x0 + max(1, int(self.roi[2] * w))], x0, y0

    def _choose(self, lines: list[_Line]) -> _Line:
        """The line that is the code: one that matches the pattern by itself (a bolt hole read as 'O'
        beside the code is not part of it), else all lines joined by a space."""
        if self.pattern is not None:
            matching = [line for line in lines if self.pattern.fullmatch(line.text)]
            if matching:
                return max(matching, key=lambda line: min(line.char_scores))
        return _Line(
            " ".join(line.text for line in lines),
            tuple(s for line in lines for s in line.char_scores),
            np.concatenate([line.points for line in lines]),
        )

    def read(self, pixels: np.ndarray) -> Reading:
        crop, x0, y0 = self._crop(pixels)
        try:
            engine = self._idle.get_nowait()
        except queue.Empty:
            engine = _engine(self._threads)
        try:
            out = engine(crop)  # type: ignore[operator]
        finally:
            self._idle.put(engine)
        lines = _lines(out)
        if not lines:
            return Reading("", 0.0, None, None)
        line = self._choose(lines)
        x, y, w, h = _bounds(line.points)
        region = Region(x0 + x, y0 + y, w, h, area_px=w * h)
        return Reading(line.text, min(line.char_scores), region, print_contrast(crop, line.points))

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        findings = []
        for frame in frames:
            reading = self.read(frame.pixels)
            found = [
                Finding(
                    self.name,
                    self.version,
                    FindingKind.TEXT,
                    score=reading.confidence,
                    label=self.label(reading),
                    region=reading.region,
                    text=reading.text,
                )
            ]
            if self.min_print_contrast is not None and reading.print_contrast is not None:
                found.append(
                    Finding(
                        self.name,
                        self.version,
                        FindingKind.TEXT,
                        score=reading.print_contrast,
                        label=PRINT_CONTRAST,
                        region=reading.region,
                    )
                )
            findings.append(found)
        return findings

    def label(self, reading: Reading) -> str:
        if not reading.text:
            return TEXT_MISSING
        minimum, contrast = self.min_print_contrast, reading.print_contrast
        if minimum is not None and contrast is not None and contrast < minimum:
            return TEXT_POOR_PRINT
        if reading.confidence < self.min_confidence:
            return TEXT_UNREADABLE
        if self.pattern is not None and not self.pattern.fullmatch(reading.text):
            return TEXT_MISMATCH
        return TEXT_OK
