"""Images far from square: mirrored out to a square ("pad") instead of stretched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import ModelCard
from inspectors.preprocess import Preprocessing, pad_square, to_model_input
from pipeline.errors import ModelContractError
from pipeline.images import encode_png
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import Frame, sha256_hex

SIM = SimulationSettings(size=256, seed=11, defect_rate=0.5)
PAD = Preprocessing((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "pad")


def _blob_aspect(model_input: np.ndarray, prep: Preprocessing, shape: tuple[int, int]) -> float:
    """Width / height of the dark blob in the image's part of a model input."""
    ys, xs = np.nonzero(prep.image_part(model_input[0, 0], shape) < 0)
    return float((xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1))


def test_pad_keeps_a_round_mark_round_where_stretch_squashes_it() -> None:
    image = np.full((100, 400, 3), 255, np.uint8)
    cv2.circle(image, (200, 50), 30, (0, 0, 0), -1)
    stretch = Preprocessing(PAD.size, PAD.mean, PAD.std)
    assert _blob_aspect(to_model_input([image], PAD), PAD, (100, 400)) == pytest.approx(1.0, abs=0.1)
    assert _blob_aspect(to_model_input([image], stretch), stretch, (100, 400)) == pytest.approx(
        0.25, abs=0.05
    )
    assert pad_square(image).shape == (400, 400, 3)


def test_the_image_part_of_a_map_is_where_the_image_lies_in_its_square() -> None:
    model_map = np.zeros((224, 224), np.float32)
    model_map[84:140, :] = 1.0  # a 100×400 image fills rows 150..250 of its 400 px square
    part = PAD.image_part(model_map, (100, 400, 3))
    assert part.shape == (56, 224) and part.min() == 1.0
    assert Preprocessing(PAD.size, PAD.mean, PAD.std).image_part(model_map, (100, 400)) is model_map


def test_cards_record_the_aspect_and_older_cards_stretched() -> None:
    assert Preprocessing.from_json(PAD.to_json()) == PAD
    older = {k: v for k, v in PAD.to_json().items() if k != "aspect"}
    assert Preprocessing.from_json(older).aspect == "stretch"
    with pytest.raises(ValueError, match="aspect 'fill'"):
        Preprocessing.from_json({**older, "aspect": "fill"})


def test_an_unknown_aspect_in_a_card_names_the_card(anomaly_model_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(anomaly_model_dir, model)
    card = json.loads((model / "model.json").read_text())
    card["preprocessing"]["aspect"] = "fill"
    (model / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelContractError, match=r"model\.json: invalid model card.*aspect 'fill'"):
        ModelCard.load(model)


def _band(index: int, defect: str | None) -> tuple[np.ndarray, np.ndarray]:
    """64 rows across a simulated part, through its defect if it has one: four times as wide as high."""
    part = render_part(SIM, index, defect=defect)
    rows = np.nonzero(part.mask.any(axis=1))[0]
    centre = int(rows.mean()) if rows.size else 32 + (index * 37) % 192
    top = min(max(centre - 32, 0), part.image.shape[0] - 64)
    return np.ascontiguousarray(part.image[top : top + 64]), part.mask[top : top + 64]


@pytest.fixture(scope="module")
def pad_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspectors.training.fit_anomaly import FitRequest, fit_anomaly
    from inspectors.training.patchcore import PatchCoreSettings

    good = [_band(i, None)[0] for i in range(48)]
    request = FitRequest(
        name="bands",
        good_images=good[:32],
        calibration_images=good[32:],
        training_digest="0" * 64,
        source="simulated bands",
        settings=PatchCoreSettings(bank_size=512, aspect="pad"),
    )
    return fit_anomaly(request, tmp_path_factory.mktemp("models"))[0]


def test_a_pad_model_finds_defects_in_wide_frames(pad_model_dir: Path) -> None:
    inspector = AnomalyInspector(pad_model_dir)
    assert inspector.card.preprocessing.aspect == "pad"
    bands = [_band(100 + i, kind) for i, kind in enumerate(["scratch", "pit", "crack"] * 6)]
    good = [_band(200 + i, None)[0] for i in range(12)]
    _, scores = inspector.score_images([image for image, _ in bands] + good)
    truth = [1] * len(bands) + [0] * len(good)
    assert roc_auc_score(truth, scores) >= 0.9
    image, mask = max(bands, key=lambda b: b[1].sum())
    data = encode_png(image)
    frame = Frame(image, "test", "cam1", datetime.now(UTC), sha256_hex(data), "test://", data)
    findings = inspector.inspect([frame])[0]
    heatmap = findings[0].heatmap
    assert heatmap is not None and heatmap.shape == mask.shape
    y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((25, 25), np.uint8))
    assert near[y, x], "the map's peak is not on the defect"
