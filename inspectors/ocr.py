"""Label / lot-code reading with RapidOCR (its ONNX models ship inside the wheel).

One TEXT finding per frame: ``text_ok``, ``text_mismatch`` (read, but not the
line's pattern), ``text_unreadable`` (confidence below the minimum) or
``text_missing`` (nothing printed where the label should be).
"""

from __future__ import annotations

import importlib.metadata
import queue
import re
from collections.abc import Sequence

import numpy as np

from pipeline.config import load_environment
from pipeline.errors import ModelContractError
from pipeline.types import Finding, FindingKind, Frame, Region

TEXT_OK = "text_ok"
TEXT_MISMATCH = "text_mismatch"
TEXT_UNREADABLE = "text_unreadable"
TEXT_MISSING = "text_missing"


def _engine(threads: int | None) -> object:
    try:
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise ModelContractError(
            "the OCR specialist needs the package 'rapidocr' (pip install 'qcflow[ocr]')"
        ) from exc
    # Small crops: cap the detector's input instead of upscaling to 736 px (5× faster, same reads).
    params: dict[str, object] = {
        "Global.log_level": "error",
        "Global.use_cls": False,
        "Det.limit_type": "max",
        "Det.limit_side_len": 320,
    }
    threads = load_environment().session_threads(threads)
    if threads is not None:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    return RapidOCR(params=params)


class LabelOcrInspector:
    name = "ocr"
    providers = ("CPUExecutionProvider",)

    def __init__(
        self,
        *,
        roi: tuple[float, float, float, float] | None = None,
        pattern: str | None = None,
        min_confidence: float = 0.8,
        threads: int | None = None,  # ONNX Runtime's (None: QCFLOW_INFERENCE_THREADS, else one per core)
    ) -> None:
        self.roi, self.min_confidence = roi, min_confidence
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

    def read(self, pixels: np.ndarray) -> tuple[str, float, Region | None]:
        """Text (lines joined by a space), mean confidence, and its box in frame pixels."""
        crop, x0, y0 = self._crop(pixels)
        try:
            engine = self._idle.get_nowait()
        except queue.Empty:
            engine = _engine(self._threads)
        try:
            out = engine(crop)  # type: ignore[operator]
        finally:
            self._idle.put(engine)
        if not out.txts:
            return "", 0.0, None
        points = np.concatenate([np.asarray(b) for b in out.boxes]).astype(int)
        x, y = max(0, int(points[:, 0].min())), max(0, int(points[:, 1].min()))
        w, h = int(points[:, 0].max()) - x + 1, int(points[:, 1].max()) - y + 1
        region = Region(x0 + x, y0 + y, max(1, w), max(1, h), area_px=max(1, w) * max(1, h))
        return " ".join(out.txts), float(np.mean(out.scores)), region

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        findings = []
        for frame in frames:
            text, confidence, region = self.read(frame.pixels)
            findings.append(
                [
                    Finding(
                        self.name,
                        self.version,
                        FindingKind.TEXT,
                        score=confidence,
                        label=self._label(text, confidence),
                        region=region,
                        text=text,
                    )
                ]
            )
        return findings

    def _label(self, text: str, confidence: float) -> str:
        if not text:
            return TEXT_MISSING
        if confidence < self.min_confidence:
            return TEXT_UNREADABLE
        if self.pattern is not None and not self.pattern.fullmatch(text):
            return TEXT_MISMATCH
        return TEXT_OK
