"""Data types passed between the stages of the pipeline.

Frozen, slotted dataclasses validated on construction, so a bad value is
caught where it is made rather than three stages later.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from pipeline.errors import FrameError


class Decision(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    REVIEW = "REVIEW"


class FindingKind(enum.StrEnum):
    ANOMALY = "anomaly"
    DEFECT_CLASS = "defect_class"
    TEXT = "text"
    DESCRIPTION = "description"
    ERROR = "error"  # the specialist failed on this frame; ``text`` says why


class ReviewStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image: BGR uint8 pixels plus where and when it came from.

    ``encoded`` holds the exact bytes the image was read from (or encoded to),
    and ``sha256`` is their digest: the frame's identity in the store and db.
    """

    pixels: np.ndarray
    line_id: str
    camera_id: str
    captured_at: datetime
    sha256: str
    source_uri: str
    encoded: bytes = field(repr=False, default=b"")

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
            actual = f"{type(p).__name__} {getattr(p, 'dtype', '?')} {getattr(p, 'shape', '?')}"
            raise FrameError(f"frame from {self.source_uri}: expected pixels H×W×3 uint8, got {actual}")
        if p.shape[0] < 8 or p.shape[1] < 8:
            raise FrameError(f"frame from {self.source_uri}: image too small {p.shape[:2]}")
        if self.captured_at.tzinfo is None:
            raise FrameError(f"frame from {self.source_uri}: captured_at must be timezone-aware")
        if len(self.sha256) != 64 or not all(c in "0123456789abcdef" for c in self.sha256):
            raise FrameError(f"frame from {self.source_uri}: sha256 must be 64 hex chars")
        if self.encoded and sha256_hex(self.encoded) != self.sha256:
            raise FrameError(f"frame from {self.source_uri}: sha256 does not match encoded bytes")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


@dataclass(frozen=True, slots=True)
class Region:
    """A box (x, y, w, h) in frame pixels, with its area and, when known, size in mm."""

    x: int
    y: int
    w: int
    h: int
    area_px: int
    mask: np.ndarray | None = field(default=None, repr=False)
    mm_per_px: float | None = None

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0 or self.x < 0 or self.y < 0:
            raise ValueError(f"region box must be non-negative with positive size, got {self.box}")
        if self.area_px < 0 or self.area_px > self.w * self.h:
            raise ValueError(f"region area {self.area_px} px outside 0..{self.w * self.h}")

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def length_mm(self) -> float | None:
        """Longest side of the box in millimetres, when the camera has a scale."""
        return None if self.mm_per_px is None else max(self.w, self.h) * self.mm_per_px

    @property
    def area_mm2(self) -> float | None:
        return None if self.mm_per_px is None else self.area_px * self.mm_per_px**2


@dataclass(frozen=True, slots=True)
class Finding:
    """What one specialist saw in one frame."""

    specialist: str
    model_version: str
    kind: FindingKind
    score: float | None = None
    label: str | None = None
    region: Region | None = None
    text: str | None = None
    heatmap: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.specialist or not self.model_version:
            raise ValueError("finding needs a specialist name and a model version")
        if self.heatmap is not None and (self.heatmap.ndim != 2 or self.heatmap.dtype != np.float32):
            raise ValueError(
                f"heatmap must be a 2-D float32 array, got {self.heatmap.dtype} {self.heatmap.shape}"
            )


@dataclass(frozen=True, slots=True)
class InspectionResult:
    """Findings and decision for one frame under one configuration."""

    frame_sha256: str
    findings: tuple[Finding, ...]
    decision: Decision
    reason: str
    timings_ms: dict[str, float]
    config_hash: str
    providers: tuple[str, ...] = ()

    @property
    def anomaly_score(self) -> float | None:
        scores = [f.score for f in self.findings if f.kind is FindingKind.ANOMALY and f.score is not None]
        return max(scores) if scores else None


@dataclass(frozen=True, slots=True)
class SyntheticImage:
    """A generated defect image; never used until a person approves it."""

    pixels: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    defect_class: str
    generator: str
    model_version: str
    seed: int
    conditioning: dict[str, object]
    source_image_sha256: str
    status: ReviewStatus = ReviewStatus.PENDING
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.pixels.shape[:2] != self.mask.shape[:2]:
            raise ValueError(f"mask shape {self.mask.shape[:2]} does not match image {self.pixels.shape[:2]}")
        if self.status is not ReviewStatus.PENDING and not self.reviewed_by:
            raise ValueError(f"status {self.status} needs reviewed_by")
