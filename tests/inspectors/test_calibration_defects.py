"""Finding and reading calibration images (defects, and good images of other parts): folder layouts,
clear errors, and no silent reuse of the images a model is fitted on or an evaluation scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectors.training.fit_anomaly import (
    calibration_defect_paths,
    calibration_good_paths,
    load_calibration_defects,
    request_from_mvtec,
)
from inspectors.training.patchcore import PatchCoreSettings
from pipeline.datasets import open_mvtec
from pipeline.errors import DatasetError, FrameError
from pipeline.types import sha256_hex


def write_images(folder: Path, n: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"{i:03d}.png"
        cv2.imwrite(str(path), np.full((8, 8, 3), i, np.uint8))
        paths.append(path)
    return paths


def test_plain_folder_and_its_defect_type_subfolders(tmp_path: Path) -> None:
    top = write_images(tmp_path / "d", 2)
    crack = write_images(tmp_path / "d" / "crack", 2, start=10)
    write_images(tmp_path / "d" / "good", 3, start=20)  # never defects
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    assert calibration_defect_paths(tmp_path / "d") == top + crack


def test_mvtec_layout_gives_the_test_defect_folders_only(tmp_path: Path) -> None:
    write_images(tmp_path / "m" / "train" / "good", 3)
    write_images(tmp_path / "m" / "test" / "good", 3, start=10)
    pit = write_images(tmp_path / "m" / "test" / "pit", 2, start=20)
    scratch = write_images(tmp_path / "m" / "test" / "scratch", 1, start=30)
    assert calibration_defect_paths(tmp_path / "m") == pit + scratch


@pytest.mark.parametrize("layout", ["empty", "only-good", "mvtec-without-defects", "missing"])
def test_no_defect_images_is_a_clear_error(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "d"
    if layout != "missing":
        folder.mkdir()
    if layout == "only-good":
        write_images(folder / "good", 2)
    if layout == "mvtec-without-defects":
        write_images(folder / "test" / "good", 2)
    with pytest.raises(DatasetError, match=str(folder)):
        calibration_defect_paths(folder)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    write_images(tmp_path / "d", 2)
    broken = tmp_path / "d" / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(FrameError, match="broken.png"):
        load_calibration_defects(tmp_path / "d")


def test_images_of_the_evaluation_split_are_refused_unless_allowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_images(data / "train" / "good", 3)
    write_images(data / "test" / "good", 2, start=10)
    evaluated = write_images(data / "test" / "crack", 2, start=20)
    defects = write_images(tmp_path / "defects", 3, start=40)
    shutil.copy(evaluated[0], tmp_path / "defects" / "renamed-copy.png")  # same bytes, other name
    dataset = open_mvtec(data, need_test=False)
    with pytest.raises(DatasetError, match="allow-evaluation-overlap") as refused:
        load_calibration_defects(tmp_path / "defects", dataset)
    assert "1 of 4" in str(refused.value) and "renamed-copy.png" in str(refused.value)
    with pytest.raises(DatasetError, match="2 of 2"):
        load_calibration_defects(data, dataset)  # the dataset itself: its test defects
    allowed = load_calibration_defects(tmp_path / "defects", dataset, allow_evaluation_overlap=True)
    assert (len(allowed.images), allowed.n_in_evaluation) == (4, 1)
    clean = load_calibration_defects(tmp_path / "defects", None)
    assert clean.n_in_evaluation == 0 and len(clean.digest) == 64
    assert clean.source == str((tmp_path / "defects").resolve()) and len(defects) == 3


def test_calibration_good_images_replace_the_held_out_share(tmp_path: Path) -> None:
    data = tmp_path / "data"
    train = write_images(data / "train" / "good", 12)
    other_parts = write_images(tmp_path / "other-parts", 8, start=50)
    request = request_from_mvtec(data, "m", PatchCoreSettings(), calibration_good=tmp_path / "other-parts")
    assert (len(request.good_images), len(request.calibration_images)) == (12, 8)  # every fit image kept
    assert request.image_sha256["calibration"] == [sha256_hex(p.read_bytes()) for p in other_parts]
    assert request.calibration_source == str((tmp_path / "other-parts").resolve())
    held_out = request_from_mvtec(data, "m", PatchCoreSettings())
    assert len(held_out.good_images) + len(held_out.calibration_images) == len(train)
    assert held_out.calibration_source == "held out from the fit images"


def test_calibration_good_images_must_be_new_to_the_model_and_the_evaluation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    train = write_images(data / "train" / "good", 6)
    tested = write_images(data / "test" / "good", 2, start=30)
    folder = tmp_path / "other-parts"
    write_images(folder, 8, start=50)
    shutil.copy(train[0], folder / "fit-image-again.png")
    dataset = open_mvtec(data, need_test=False)
    with pytest.raises(DatasetError, match="fitted on") as refused:
        calibration_good_paths(folder, dataset)
    assert "1 of 9" in str(refused.value) and "fit-image-again.png" in str(refused.value)
    (folder / "fit-image-again.png").unlink()
    shutil.copy(tested[0], folder / "test-image.png")
    with pytest.raises(DatasetError, match="allow-evaluation-overlap"):
        calibration_good_paths(folder, dataset)
    assert len(calibration_good_paths(folder, dataset, allow_evaluation_overlap=True)) == 9
    write_images(tmp_path / "few", 7)
    for folder, says in ((tmp_path / "nowhere", "not found"), (tmp_path / "few", "7 images .* at least 8")):
        with pytest.raises(DatasetError, match=f"{folder}: .*{says}"):
            calibration_good_paths(folder, dataset)
