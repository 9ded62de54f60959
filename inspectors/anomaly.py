"""Anomaly specialist: PatchCore-style scoring in ONNX Runtime (no torch).

Gives one finding per frame with the image score and heat map, plus one per
connected region of the map above the review threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspectors.onnx_session import open_model
from inspectors.preprocess import to_model_input
from pipeline.config import load_environment
from pipeline.decide import Thresholds
from pipeline.storage import heatmap_step
from pipeline.types import Finding, FindingKind, Frame, Region


@dataclass(frozen=True, slots=True)
class Tiling:
    tile_px: int
    overlap: float = 0.25

    def __post_init__(self) -> None:
        if self.tile_px < 32 or not 0 <= self.overlap < 1:
            raise ValueError(
                f"tiling needs tile_px >= 32 and 0 <= overlap < 1, got {self.tile_px}, {self.overlap}"
            )


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]  # the last tile ends at the border


def tile_boxes(height: int, width: int, tiling: Tiling) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of overlapping tiles covering the whole frame."""
    stride = max(1, int(tiling.tile_px * (1 - tiling.overlap)))
    tw, th = min(tiling.tile_px, width), min(tiling.tile_px, height)
    return [(x, y, tw, th) for y in _starts(height, th, stride) for x in _starts(width, tw, stride)]


# Frames per ONNX Runtime call, unless QCFLOW_INFERENCE_BATCH says otherwise. On most CPUs measured,
# batches past two are slower per frame (the first: 7.6 ms a frame at 2, 9.8 ms at 16): the batch's
# patch-to-bank distance matrix, 12.8 MB a frame for a 4,096 bank, no longer stays in the cache; on an
# AMD EPYC with AVX-512 VNNI, 8 was faster. A GPU wants larger batches.
CPU_BATCH = 2
GPU_BATCH = 16


class AnomalyInspector:
    name = "anomaly"

    def __init__(
        self,
        model_dir: Path,
        *,
        mm_per_px: Mapping[str, float] | None = None,
        thresholds: Thresholds | None = None,
        tiling: Mapping[str, tuple[int, float]] | None = None,  # camera -> (tile_px, overlap)
        batch_size: int | None = None,  # else QCFLOW_INFERENCE_BATCH, else by provider
        min_region_px: int = 16,
        threads: int | None = None,  # ONNX Runtime's (None: QCFLOW_INFERENCE_THREADS, else one per core)
    ) -> None:
        self.session, self.card = open_model(Path(model_dir), threads)
        self.version = self.card.version
        self.providers = tuple(self.session.get_providers())
        self.thresholds = thresholds or self.card.thresholds
        self.mm_per_px = dict(mm_per_px or {})
        self.tiling = {camera: Tiling(*t) for camera, t in (tiling or {}).items()}
        on_cpu = self.providers[0] == "CPUExecutionProvider"
        by_provider = CPU_BATCH if on_cpu else GPU_BATCH
        self.batch_size = batch_size or load_environment().inference_batch or by_provider
        self.min_region_px = min_region_px

    def score_images(self, images_bgr: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly maps (N×h×w at model resolution, each covering its whole image) and image scores (N,).

        An image's score is the maximum of the map over the image itself, as calibrated; for a model
        whose card has a ``map_scale``, the graph's own score (its fine map's maximum), with the map
        scaled onto the score's thresholds.
        """
        prep = self.card.preprocessing
        map_scale = self.card.map_scale
        h, w = prep.size
        maps = np.empty((len(images_bgr), h, w), np.float32)
        scores = np.empty(len(images_bgr), np.float32)
        for start in range(0, len(images_bgr), self.batch_size):
            chunk = images_bgr[start : start + self.batch_size]
            anomaly_map, graph_score = self.session.run(
                ["anomaly_map", "score"], {"image": to_model_input(chunk, prep)}
            )
            for i, (image, m) in enumerate(zip(chunk, anomaly_map[:, 0], strict=True), start):
                part = prep.image_part(m, image.shape)
                if map_scale is None:
                    scores[i] = part.max()
                else:
                    scores[i], part = graph_score[i - start], part * map_scale
                maps[i] = part if part.shape == (h, w) else cv2.resize(part, (w, h))
        return maps, scores

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        """One image finding per frame (score = the model's, as calibrated), plus its regions.

        A whole frame's heat map is the model's map stretched over the frame at no more than the stored
        picture's size (``heatmap_step``): a 4,000 px frame's map is not drawn pixel by pixel from a
        240 px one. Regions are found on it and given in the frame's pixels.
        """
        whole = [f for f in frames if f.camera_id not in self.tiling]
        maps, scores = self.score_images([f.pixels for f in whole])
        scored = {
            id(f): (_stretched(m, f.height, f.width), float(s))
            for f, m, s in zip(whole, maps, scores, strict=True)
        }
        for f in frames:
            if f.camera_id in self.tiling:
                scored[id(f)] = self._tiled_heatmap(f.pixels, self.tiling[f.camera_id])
        return [self._findings(f, *scored[id(f)]) for f in frames]

    def _tiled_heatmap(self, pixels: np.ndarray, tiling: Tiling) -> tuple[np.ndarray, float]:
        """Score overlapping tiles at full resolution and keep each pixel's worst score.

        A 2 mm pit on a 4,000 px frame would vanish when the frame is shrunk to
        the model's input; a tile keeps it at its real size. The frame's score is its worst tile's.
        """
        boxes = tile_boxes(pixels.shape[0], pixels.shape[1], tiling)
        maps, scores = self.score_images([pixels[y : y + h, x : x + w] for x, y, w, h in boxes])
        heatmap = np.zeros(pixels.shape[:2], np.float32)
        for (x, y, w, h), m in zip(boxes, maps, strict=True):
            tile = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
            np.maximum(heatmap[y : y + h, x : x + w], tile, out=heatmap[y : y + h, x : x + w])
        return heatmap, float(scores.max())

    def _findings(self, frame: Frame, heatmap: np.ndarray, score: float) -> list[Finding]:
        findings = [
            Finding(
                self.name, self.version, FindingKind.ANOMALY, score=score, label="anomaly", heatmap=heatmap
            )
        ]
        if score < self.thresholds.review:
            return findings
        scale = (frame.width / heatmap.shape[1], frame.height / heatmap.shape[0])
        for region, region_score in self._regions(heatmap, self.mm_per_px.get(frame.camera_id), scale):
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

    def _regions(
        self, heatmap: np.ndarray, mm_per_px: float | None, scale: tuple[float, float] = (1.0, 1.0)
    ) -> list[tuple[Region, float]]:
        """Connected parts of the map at or above the review threshold, largest peak first; boxes and
        areas in frame pixels (``scale``: frame pixels per map pixel, across and down)."""
        sx, sy = scale
        above = (heatmap >= self.thresholds.review).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
        regions = []
        for i in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[i])
            area_px = round(area * sx * sy)
            if area_px < self.min_region_px:
                continue
            window = (slice(y, y + h), slice(x, x + w))  # the region's box, not the whole frame
            peak = float(heatmap[window][labels[window] == i].max())
            left, top = round(x * sx), round(y * sy)  # edges to the nearest frame pixel, inside the frame
            box = (left, top, round((x + w) * sx) - left, round((y + h) * sy) - top)
            regions.append((Region(*box, area_px=area_px, mm_per_px=mm_per_px), peak))
        return sorted(regions, key=lambda r: -r[1])


def _stretched(model_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """The model's map over a frame of ``height`` × ``width``, shrunk by the heat map picture's step."""
    step = heatmap_step(height, width)
    size = (max(1, width // step), max(1, height // step))
    return cv2.resize(model_map, size, interpolation=cv2.INTER_LINEAR)
