"""Anomaly specialist: PatchCore-style scoring in ONNX Runtime (no torch).

Gives one finding per frame with the image score and heat map, plus one per
connected region of the map above the review threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from inspectors.onnx_session import open_model
from inspectors.preprocess import to_model_input
from pipeline.decide import Thresholds
from pipeline.types import Finding, FindingKind, Frame, Region


class AnomalyInspector:
    name = "anomaly"

    def __init__(
        self,
        model_dir: Path,
        *,
        mm_per_px: Mapping[str, float] | None = None,
        thresholds: Thresholds | None = None,
        batch_size: int = 16,
        min_region_px: int = 16,
    ) -> None:
        self.session, self.card = open_model(Path(model_dir))
        self.version = self.card.version
        self.providers = tuple(self.session.get_providers())
        self.thresholds = thresholds or self.card.thresholds
        self.mm_per_px = dict(mm_per_px or {})
        self.batch_size = batch_size
        self.min_region_px = min_region_px

    def score_images(self, images_bgr: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly maps (N×h×w at model resolution) and image scores (N,)."""
        maps, scores = [], []
        for start in range(0, len(images_bgr), self.batch_size):
            batch = to_model_input(images_bgr[start : start + self.batch_size], self.card.preprocessing)
            anomaly_map, score = self.session.run(["anomaly_map", "score"], {"image": batch})
            maps.append(anomaly_map[:, 0])
            scores.append(score)
        if not maps:
            return np.empty((0, *self.card.preprocessing.size), np.float32), np.empty(0, np.float32)
        return np.concatenate(maps), np.concatenate(scores)

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        maps, scores = self.score_images([f.pixels for f in frames])
        return [self._findings(f, m, float(s)) for f, m, s in zip(frames, maps, scores, strict=True)]

    def _findings(self, frame: Frame, small_map: np.ndarray, score: float) -> list[Finding]:
        heatmap = cv2.resize(small_map, (frame.width, frame.height), interpolation=cv2.INTER_LINEAR)
        findings = [
            Finding(
                self.name, self.version, FindingKind.ANOMALY, score=score, label="anomaly", heatmap=heatmap
            )
        ]
        if score < self.thresholds.review:
            return findings
        for region, region_score in self._regions(heatmap, self.mm_per_px.get(frame.camera_id)):
            findings.append(
                Finding(
                    self.name,
                    self.version,
                    FindingKind.ANOMALY,
                    score=region_score,
                    label="anomaly_region",
                    region=region,
                )
            )
        return findings

    def _regions(self, heatmap: np.ndarray, mm_per_px: float | None) -> list[tuple[Region, float]]:
        above = (heatmap >= self.thresholds.review).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
        regions = []
        for i in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < self.min_region_px:
                continue
            peak = float(heatmap[labels == i].max())
            regions.append((Region(x, y, w, h, area_px=area, mm_per_px=mm_per_px), peak))
        return sorted(regions, key=lambda r: -r[1])
