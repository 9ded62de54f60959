"""The director: calls the specialists a line enables and decides per frame.

It knows specialists only through the Protocol and the registry, and records
which specialist and model version produced each finding (in the findings and
in the configuration hash of every inspection).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import LineConfig
from pipeline.decide import Thresholds, decide
from pipeline.specialists import Inspector, anomaly_scorer
from pipeline.types import Finding, FindingKind, Frame, InspectionResult


@dataclass(frozen=True, slots=True)
class Orchestrator:
    line: LineConfig
    inspectors: tuple[Inspector, ...]
    thresholds: Thresholds | None  # None when no scoring specialist is on: every frame to review
    config_hash: str

    def inspect(self, frames: Sequence[Frame]) -> list[InspectionResult]:
        per_frame: list[list[Finding]] = [[] for _ in frames]
        timings: dict[str, float] = {}
        for inspector in self.inspectors:
            started = time.perf_counter()
            for found, new in zip(per_frame, inspector.inspect(frames), strict=True):
                found.extend(new)
            timings[inspector.name] = (time.perf_counter() - started) * 1000 / max(1, len(frames))
        providers = tuple(sorted({p for i in self.inspectors for p in i.providers}))
        results = []
        for frame, findings in zip(frames, per_frame, strict=True):
            scores = [f.score for f in findings if f.kind is FindingKind.ANOMALY and f.score is not None]
            verdict = decide(max(scores) if scores else None, self.thresholds)
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


def build_orchestrator(line: LineConfig, model_dirs: Mapping[str, Path]) -> Orchestrator:
    """Instantiate the line's enabled specialists; ``model_dirs`` maps model name -> folder."""
    settings = line.specialists.anomaly
    mm = {c.camera_id: c.mm_per_px for c in line.cameras if c.mm_per_px}
    override = (
        Thresholds(settings.review_threshold, settings.fail_threshold)
        if settings.review_threshold is not None and settings.fail_threshold is not None
        else None
    )
    inspectors: tuple[Inspector, ...] = ()
    thresholds = None
    if settings.enabled:
        anomaly = anomaly_scorer(model_dirs[settings.model], mm_per_px=mm, thresholds=override)
        inspectors, thresholds = (anomaly,), anomaly.thresholds
    identity = {
        "specialists": line.specialists.model_dump(mode="json"),
        "versions": {i.name: i.version for i in inspectors},
    }
    config_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return Orchestrator(line, inspectors, thresholds, config_hash)
