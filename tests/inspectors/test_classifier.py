"""Defect-type classifier on procedural parts: scratches vs pits vs cracks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from inspectors.classifier import DefectTypeInspector
from inspectors.preprocess import mask_box
from inspectors.training.classifier import fit_classifier, stratified_split
from pipeline.errors import DatasetError, ModelContractError
from pipeline.images import encode_png
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import Finding, FindingKind, Frame, Region, sha256_hex

SIM = SimulationSettings(size=224, seed=17)
KINDS = ("scratch", "pit", "crack")


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("types")
    for kind in KINDS:
        (root / "test" / kind).mkdir(parents=True)
        (root / "ground_truth" / kind).mkdir(parents=True)
        for i in range(32):
            part = render_part(SIM, i, defect=kind)
            cv2.imwrite(str(root / "test" / kind / f"{i:02d}.png"), part.image)
            cv2.imwrite(str(root / "ground_truth" / kind / f"{i:02d}_mask.png"), part.mask)
    model_dir, card = fit_classifier(root, "types", tmp_path_factory.mktemp("models"))
    assert card.training["classes"] == sorted(KINDS)
    return model_dir


def test_holdout_accuracy_floor(classifier_dir: Path) -> None:
    inspector = DefectTypeInspector(classifier_dir)
    assert inspector.card.metrics["accuracy"] >= 0.9, inspector.card.metrics


def test_labels_anomaly_regions_of_new_parts(classifier_dir: Path) -> None:
    inspector = DefectTypeInspector(classifier_dir)
    frames, found, truth = [], [], []
    for i, kind in enumerate(KINDS * 4):
        part = render_part(SIM, 500 + i, defect=kind)
        data = encode_png(part.image)
        frames.append(Frame(part.image, "t", "c", datetime.now(UTC), sha256_hex(data), "test://", data))
        x, y, w, h = mask_box(part.mask)  # stands in for the anomaly specialist's region
        found.append(
            [Finding("anomaly", "v", FindingKind.ANOMALY, score=1.0, region=Region(x, y, w, h, w * h))]
        )
        truth.append(kind)
    frames.append(frames[0])
    found.append([])  # a frame without a region gets no defect type
    typed = inspector.inspect_regions(frames, found)
    assert typed[-1] == []
    labels = [f[0].label for f in typed[:-1]]
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) >= 10, list(
        zip(labels, truth, strict=True)
    )


def test_class_list_must_match_the_line(classifier_dir: Path) -> None:
    with pytest.raises(ModelContractError, match="expects"):
        DefectTypeInspector(classifier_dir, classes=["scratch", "pit"])


def test_one_class_is_not_enough(tmp_path: Path) -> None:
    (tmp_path / "test" / "pit").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "test" / "pit" / "a.png"), render_part(SIM, 0, defect="pit").image)
    with pytest.raises(DatasetError, match="two defect classes"):
        stratified_split(tmp_path)
