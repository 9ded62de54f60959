"""Builders for the Frame and InspectionResult objects the db tests store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pipeline.types import (
    Decision,
    Finding,
    FindingKind,
    Frame,
    InspectionResult,
    Region,
    sha256_hex,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _frame(n: int = 0, line_id: str = "line-a", camera_id: str = "cam-1") -> Frame:
    """A small distinct frame; its sha256 is derived from ``n`` so tests can repeat it."""
    pixels = np.full((8, 12, 3), n % 256, dtype=np.uint8)
    return Frame(
        pixels=pixels,
        line_id=line_id,
        camera_id=camera_id,
        captured_at=T0 + timedelta(seconds=n),
        sha256=sha256_hex(f"frame-{n}".encode()),
        source_uri=f"folder:///data/{line_id}/{n:04d}.png",
    )


def _result(
    frame: Frame,
    decision: Decision = Decision.FAIL,
    config_hash: str = "cfg-1",
    score: float = 0.9,
) -> InspectionResult:
    """An inspection with an anomaly finding (with region and mm) and a text finding."""
    region = Region(x=2, y=1, w=4, h=3, area_px=10, mm_per_px=0.5)
    findings = (
        # a numpy scalar on purpose: inspectors return them, and they are not JSON/SQL-safe
        Finding("anomaly", "pc-1.2", FindingKind.ANOMALY, score=np.float32(score), region=region),  # type: ignore[arg-type]
        Finding("ocr", "ocr-0.3", FindingKind.TEXT, text="LOT 42", score=0.99),
    )
    return InspectionResult(
        frame_sha256=frame.sha256,
        findings=findings,
        decision=decision,
        reason=f"anomaly score {score:.2f}",
        timings_ms={"anomaly": np.float64(3.5), "ocr": 1.25},
        config_hash=config_hash,
        providers=("CPUExecutionProvider",),
    )


@pytest.fixture
def make_frame() -> Callable[..., Frame]:
    return _frame


@pytest.fixture
def make_result() -> Callable[..., InspectionResult]:
    return _result
