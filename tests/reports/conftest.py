"""Fixtures for report tests: a workspace without a model, a small labelled image folder,
and a deterministic scorer (no ONNX model: these tests are about the report machinery)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.db.models import SyntheticImageRow
from pipeline.decide import Thresholds
from pipeline.images import encode_png
from pipeline.inspection import Workspace, open_workspace
from pipeline.types import Finding, Frame

SIZE = 64
BACKGROUND = 100


class BrightnessScorer:
    """Anomaly map = distance of each pixel's grey level from the clean background.

    Good images (background plus small noise) score about 0.06; a drawn square scores
    by its contrast, so faint squares escape and bright ones fail, as a real model would.
    """

    name = "anomaly"
    providers: tuple[str, ...] = ("test",)

    def __init__(self, version: str = "bright-1", thresholds: Thresholds | None = None, gain: float = 1.0):
        self.version = version
        self.thresholds = thresholds or Thresholds(review=0.1, fail=0.3)
        self.gain = gain

    def score_images(self, images_bgr: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        grey = [cv2.cvtColor(i, cv2.COLOR_BGR2GRAY).astype(np.float32) for i in images_bgr]
        maps = np.stack([self.gain * np.abs(g - BACKGROUND) / 155.0 for g in grey]).astype(np.float32)
        return maps, maps.reshape(len(maps), -1).max(axis=1)

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        raise NotImplementedError("reports only score images")


def part_image(rng: np.random.Generator, contrast: int = 0, at: tuple[int, int] = (20, 20)) -> np.ndarray:
    """A flat grey part with noise; ``contrast`` > 0 draws a brighter 12 px square defect."""
    image = np.clip(BACKGROUND + rng.integers(-8, 9, (SIZE, SIZE)), 0, 255).astype(np.uint8)
    if contrast:
        y, x = at
        image[y : y + 12, x : x + 12] = BACKGROUND + contrast
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def defect_mask(at: tuple[int, int] = (20, 20)) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[at[0] : at[0] + 12, at[1] : at[1] + 12] = 255
    return mask


# Contrasts of the defective test images: 6 and 10 are faint (the scorer misses them).
CRACK_CONTRASTS = (6, 40, 80, 120, 150)
SPOT_CONTRASTS = (10, 60, 100)
N_GOOD = 12


@pytest.fixture
def mvtec_folder(tmp_path: Path) -> Path:
    """MVTec layout: 12 good, 5 'crack' with masks, 3 'spot' without masks."""
    rng = np.random.default_rng(7)
    root = tmp_path / "parts"
    for sub in ("train/good", "test/good", "test/crack", "test/spot", "ground_truth/crack"):
        (root / sub).mkdir(parents=True)
    (root / "train/good/000.png").write_bytes(encode_png(part_image(rng)))
    for k in range(N_GOOD):
        (root / f"test/good/{k:03d}.png").write_bytes(encode_png(part_image(rng)))
    for k, contrast in enumerate(CRACK_CONTRASTS):
        (root / f"test/crack/{k:03d}.png").write_bytes(encode_png(part_image(rng, contrast)))
        (root / f"ground_truth/crack/{k:03d}_mask.png").write_bytes(encode_png(defect_mask()))
    for k, contrast in enumerate(SPOT_CONTRASTS):
        (root / f"test/spot/{k:03d}.png").write_bytes(encode_png(part_image(rng, contrast, at=(40, 8))))
    return root


@pytest.fixture
def report_ws(tmp_path: Path) -> Iterator[Workspace]:
    """A data folder and SQLite database; no model is registered (scorers are passed in)."""
    ws = open_workspace(tmp_path / "data", tmp_path / "config")
    yield ws
    ws.engine.dispose()


def add_synthetic_image(
    ws: Workspace, *, status: str, contrast: int = 90, seed: int = 1
) -> SyntheticImageRow:
    """A generated 'crack' image in the store and the database, with the given review status."""
    rng = np.random.default_rng(seed)
    reviewed = status != "pending"
    row = SyntheticImageRow(
        sha256=ws.store.put(encode_png(part_image(rng, contrast))),
        mask_sha256=ws.store.put(encode_png(defect_mask())),
        defect_class="crack",
        generator="test-generator",
        model_version="0",
        seed=seed,
        conditioning={},
        source_image_sha256="0" * 64,
        status=status,
        reviewed_by="rita" if reviewed else None,
        reviewed_at=datetime.now(UTC) if reviewed else None,
    )
    with ws.session() as session, session.begin():
        session.add(row)
    return row
