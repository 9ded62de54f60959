"""A grounded sentence per inspection, built only from the other specialists' findings.

Nothing is said that no specialist saw: sizes come from regions, positions
from region geometry relative to the part (found by its silhouette), text
from the OCR finding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from inspectors.ocr import (
    PRINT_CONTRAST,
    TEXT_MISMATCH,
    TEXT_MISSING,
    TEXT_OK,
    TEXT_POOR_PRINT,
    TEXT_UNREADABLE,
)
from pipeline.types import Finding, FindingKind, Frame, Region


def part_geometry(pixels: np.ndarray) -> tuple[float, float, float]:
    """Centre (x, y) and radius of the part: the largest bright blob (Otsu threshold)."""
    grey = cv2.GaussianBlur(cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    _, silhouette = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(silhouette, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    h, w = grey.shape
    if not contours:
        return w / 2, h / 2, min(w, h) / 2
    (cx, cy), radius = cv2.minEnclosingCircle(max(contours, key=cv2.contourArea))
    return float(cx), float(cy), float(radius)


_SECTORS = ("right", "upper-right", "top", "upper-left", "left", "lower-left", "bottom", "lower-right")


def position_words(region: Region, centre: tuple[float, float, float]) -> str:
    cx, cy, radius = centre
    dx, dy = region.x + region.w / 2 - cx, region.y + region.h / 2 - cy
    distance = math.hypot(dx, dy) / max(radius, 1.0)
    if distance < 0.2:
        return "at the centre of the part"
    sector = round(math.degrees(math.atan2(-dy, dx)) / 45) % 8  # 0 = right, counter-clockwise
    side = _SECTORS[sector]
    ring = "near the rim" if distance > 0.8 else ("near the hub" if distance < 0.45 else "mid-radius")
    return f"{side} of the part, {ring}"


def _size(region: Region) -> str:
    if region.length_mm is not None:
        return f"{region.length_mm:.1f} mm long"
    return f"{max(region.w, region.h)} px long"


def _anomaly_clause(findings: Sequence[Finding], centre: tuple[float, float, float]) -> str:
    regions = [f for f in findings if f.kind is FindingKind.ANOMALY and f.region is not None]
    if not regions:
        return "no anomalous region"
    kinds = [f.label for f in findings if f.kind is FindingKind.DEFECT_CLASS and f.label]
    what = f"{kinds[0]}-like anomaly" if kinds else "anomaly"
    top = regions[0].region
    assert top is not None
    clause = f"{what}, {_size(top)}, {position_words(top, centre)}"
    return clause if len(regions) == 1 else f"{clause} (largest of {len(regions)} regions)"


def _text_clause(findings: Sequence[Finding]) -> str | None:
    texts = [f for f in findings if f.kind is FindingKind.TEXT]
    contrast = next((f.score for f in texts if f.label == PRINT_CONTRAST), None)
    for f in texts:
        if f.label == PRINT_CONTRAST:
            continue
        faint = "" if contrast is None else f" (print contrast {contrast:.2f})"
        return {
            TEXT_OK: f"lot code '{f.text}' read, matches pattern",
            TEXT_MISMATCH: f"lot code read as '{f.text}', does not match pattern",
            TEXT_UNREADABLE: f"lot code unreadable ('{f.text}', confidence {f.score or 0:.2f})",
            TEXT_POOR_PRINT: f"lot code '{f.text}' faint or smeared{faint}",
            TEXT_MISSING: "no lot code printed",
        }.get(f.label or "", f"text '{f.text}'")
    return None


class FindingsDescriber:
    name = "describe"
    version = "grounded-template-1"
    providers: tuple[str, ...] = ()

    def describe(self, frame: Frame, findings: Sequence[Finding]) -> Finding:
        clauses = [_anomaly_clause(findings, part_geometry(frame.pixels))]
        text = _text_clause(findings)
        if text:
            clauses.append(text)
        failed = [f.specialist for f in findings if f.kind is FindingKind.ERROR]
        if failed:
            clauses.append(f"not inspected by {', '.join(failed)} (specialist error)")
        sentence = "; ".join(clauses)
        return Finding(
            self.name, self.version, FindingKind.DESCRIPTION, text=sentence[0].upper() + sentence[1:] + "."
        )
