"""Datasets in MVTec AD layout.

``DIR/train/good/*`` (fit), ``DIR/test/good/*`` and ``DIR/test/<defect>/*``
(evaluate), optional ``DIR/ground_truth/<defect>/<stem>_mask.png``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import DatasetError
from pipeline.images import IMAGE_SUFFIXES

GOOD = "good"


@dataclass(frozen=True, slots=True)
class DatasetItem:
    path: Path
    defect_type: str | None  # None for good parts
    mask_path: Path | None = None

    @property
    def is_defect(self) -> bool:
        return self.defect_type is not None


@dataclass(frozen=True, slots=True)
class MVTecDataset:
    root: Path
    train_good: tuple[Path, ...]
    test: tuple[DatasetItem, ...]

    @property
    def defect_types(self) -> list[str]:
        return sorted({i.defect_type for i in self.test if i.defect_type})


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def open_mvtec(root: Path, *, need_test: bool = True) -> MVTecDataset:
    root = Path(root)
    train_dir, test_dir = root / "train" / GOOD, root / "test"
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if not train_dir.is_dir() or not _images(train_dir):
        raise DatasetError(f"{train_dir}: expected good training images (MVTec layout: DIR/train/good/*)")
    test: list[DatasetItem] = []
    if test_dir.is_dir():
        for sub in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            defect = None if sub.name == GOOD else sub.name
            for image in _images(sub):
                mask = root / "ground_truth" / sub.name / f"{image.stem}_mask.png"
                test.append(DatasetItem(image, defect, mask if defect and mask.is_file() else None))
    if need_test and not any(i.is_defect for i in test) or need_test and all(i.is_defect for i in test):
        raise DatasetError(f"{test_dir}: expected test/good/* and at least one test/<defect_type>/* folder")
    return MVTecDataset(root, tuple(_images(train_dir)), tuple(test))


# Next to a model: the sha256 of every image it was fitted or calibrated on, by role ("fit",
# "calibration", "calibration_defects"), so an evaluation can count the test images it already saw.
SEEN_IMAGES_FILE = "training_images.json"


def digest_files(paths: list[Path]) -> str:
    """sha256 over the names and bytes of files: identifies exactly what a model saw."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()
