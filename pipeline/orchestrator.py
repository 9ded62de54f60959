"""The director: calls the specialists a line enables and decides per frame.

It knows specialists only through the Protocol and the registry, never loads
a disabled one, and records which specialist and model version produced each
finding (in the findings and in the configuration hash of every inspection).
A specialist that raises is recorded as failed for those frames and the
others' work goes on; such frames go to REVIEW.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import LineConfig
from pipeline.decide import Thresholds, decide_findings
from pipeline.specialists import (
    Describer,
    Inspector,
    RegionInspector,
    anomaly_scorer,
    describer,
    inspector_class,
)
from pipeline.types import Finding, FindingKind, Frame, InspectionResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Orchestrator:
    line: LineConfig
    inspectors: tuple[Inspector | RegionInspector, ...]  # in call order: region inspectors after anomaly
    describer: Describer | None
    thresholds: Thresholds | None  # None when no scoring specialist is on: every frame to review
    config_hash: str

    def _run(
        self, inspector: Inspector | RegionInspector, frames: Sequence[Frame], found: list[list[Finding]]
    ) -> list[list[Finding]]:
        try:
            if isinstance(inspector, RegionInspector):
                return inspector.inspect_regions(frames, found)
            return inspector.inspect(frames)
        except Exception as exc:  # one specialist failing must not stop the others
            log.exception("%s failed on %d frames of line %s", inspector.name, len(frames), self.line.line_id)
            error = Finding(
                inspector.name, inspector.version, FindingKind.ERROR, text=f"{type(exc).__name__}: {exc}"
            )
            return [[error] for _ in frames]

    def inspect(self, frames: Sequence[Frame]) -> list[InspectionResult]:
        per_frame: list[list[Finding]] = [[] for _ in frames]
        timings: dict[str, float] = {}
        for inspector in self.inspectors:
            started = time.perf_counter()
            for found, new in zip(per_frame, self._run(inspector, frames, per_frame), strict=True):
                found.extend(new)
            timings[inspector.name] = (time.perf_counter() - started) * 1000 / max(1, len(frames))
        if self.describer is not None:
            started = time.perf_counter()
            for frame, found in zip(frames, per_frame, strict=True):
                found.append(self.describer.describe(frame, found))
            timings[self.describer.name] = (time.perf_counter() - started) * 1000 / max(1, len(frames))
        providers = tuple(sorted({p for i in self.inspectors for p in i.providers}))
        results = []
        for frame, findings in zip(frames, per_frame, strict=True):
            verdict = decide_findings(findings, self.thresholds)
            results.append(
                InspectionResult(
                    frame.sha256,
                    tuple(findings),
                    verdict.decision,
                    verdict.reason,
                    timings,
                    self.config_hash,
                    providers,
                )
            )
        return results


def build_orchestrator(
    line: LineConfig, model_dirs: Mapping[str, Path], threads: int | None = None
) -> Orchestrator:
    """Instantiate the line's enabled specialists; ``model_dirs`` maps model name -> folder, ``threads``
    gives each model session its ONNX Runtime threads (None: ``QCFLOW_INFERENCE_THREADS``, else one per
    core)."""
    specialists = line.specialists
    inspectors: list[Inspector | RegionInspector] = []
    thresholds = None
    anomaly = specialists.anomaly
    if anomaly.enabled:
        override = (
            Thresholds(anomaly.review_threshold, anomaly.fail_threshold)
            if anomaly.review_threshold is not None and anomaly.fail_threshold is not None
            else None
        )
        mm = {c.camera_id: c.mm_per_px for c in line.cameras if c.mm_per_px}
        tiling = {c.camera_id: (c.tile_px, c.tile_overlap) for c in line.cameras if c.tile_px}
        scorer = anomaly_scorer(
            model_dirs[anomaly.model], mm_per_px=mm, thresholds=override, tiling=tiling, threads=threads
        )
        inspectors.append(scorer)
        thresholds = scorer.thresholds
    if specialists.classifier is not None and specialists.classifier.enabled:
        clf = specialists.classifier
        classify = inspector_class("classifier")
        inspectors.append(classify(model_dirs[clf.model], classes=clf.classes, threads=threads))
    if specialists.ocr is not None and specialists.ocr.enabled:
        ocr = specialists.ocr
        inspectors.append(
            inspector_class("ocr")(
                roi=ocr.roi,
                pattern=ocr.pattern,
                min_confidence=ocr.min_confidence,
                min_print_contrast=ocr.min_print_contrast,
                threads=threads,
            )
        )
    caption = specialists.caption
    if caption is not None and caption.enabled:
        captioner = inspector_class("caption")
        inspectors.append(
            captioner(model_dirs[caption.model], max_tokens=caption.max_tokens, threads=threads)
        )
    describe = describer() if specialists.describe is not None and specialists.describe.enabled else None
    identity = {
        "specialists": specialists.model_dump(mode="json"),
        "versions": {i.name: i.version for i in inspectors}
        | ({describe.name: describe.version} if describe else {}),
    }
    config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return Orchestrator(line, tuple(inspectors), describe, thresholds, config_hash)
