"""The inpainting generator: reproducible, changes only the mask, keeps provenance, refuses bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from generators.crops import model_mask
from generators.diffusion import (
    CARD_FILE,
    WEIGHTS_FILE,
    DefectInpaintingGenerator,
    Sampling,
    UNetSettings,
    read_card,
)
from generators.training.fit_generator import GeneratorFitSettings, fit_generator, refresh_class_stats
from pipeline.datasets import digest_files
from pipeline.errors import ConfigError, DatasetError, ModelContractError
from pipeline.simulate import render_part
from tests.generators.conftest import SIM


@pytest.fixture(scope="module")
def generator(tiny_generator_dir: Path) -> DefectInpaintingGenerator:
    return DefectInpaintingGenerator.load(tiny_generator_dir)


@pytest.fixture
def good_image() -> np.ndarray:
    return render_part(SIM, 500, None).image


def test_card_records_classes_version_digest_and_training(tiny_generator_dir: Path) -> None:
    card = read_card(tiny_generator_dir)
    data = Path(card.training["data"])
    files = sorted((data / "test").glob("[!g]*/*.png")) + sorted((data / "ground_truth").rglob("*.png"))
    assert card.classes == ("pit", "scratch")
    assert card.training["data_digest"] == digest_files(files)
    assert card.version.endswith(card.training["data_digest"][:8])
    assert card.training["images_per_class"] == {"pit": 3, "scratch": 3}
    assert card.training["train_steps"] == 3
    assert set(card.class_stats) == {"pit", "scratch"}


def test_same_seed_same_image_other_seed_other_image(
    generator: DefectInpaintingGenerator, good_image: np.ndarray
) -> None:
    mask = generator.draw_mask("scratch", good_image.shape[:2], 4)
    run: dict[str, Any] = {
        "image": good_image,
        "mask": mask,
        "defect_class": "scratch",
        "num_inference_steps": 2,
    }
    first, again, other = generator(**run, seed=1), generator(**run, seed=1), generator(**run, seed=2)
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)
    assert (first.num_inference_steps, first.seed, first.defect_class) == (2, 1, "scratch")


def test_only_the_pixels_of_the_mask_change(
    generator: DefectInpaintingGenerator, good_image: np.ndarray
) -> None:
    mask = generator.draw_mask("pit", good_image.shape[:2], 0)
    output = generator(image=good_image, mask=mask, defect_class="pit", seed=0, num_inference_steps=2)
    changed = (output.image != good_image).any(axis=2)
    assert changed.any() and not (changed & ~mask).any()  # only the mask's own pixels: the ground truth
    assert np.array_equal(output.mask, mask) and output.image.shape == good_image.shape


def test_bad_calls_are_refused(generator: DefectInpaintingGenerator, good_image: np.ndarray) -> None:
    mask = generator.draw_mask("pit", good_image.shape[:2], 0)
    with pytest.raises(DatasetError, match=r"no class 'crack'.*classes: \['pit', 'scratch'\]"):
        generator(image=good_image, mask=mask, defect_class="crack", seed=0)
    with pytest.raises(ValueError, match="non-empty"):
        generator(image=good_image, mask=np.zeros_like(mask), defect_class="pit", seed=0)
    with pytest.raises(ValueError, match="non-empty"):
        generator(image=good_image, mask=mask[:-1], defect_class="pit", seed=0)


def test_corrupt_or_missing_checkpoint_is_refused_naming_the_file(
    tiny_generator_dir: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(tiny_generator_dir, tmp_path / "copy")
    weights = copy / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelContractError, match=r"diffusion_pytorch_model.safetensors: sha256 differs"):
        DefectInpaintingGenerator.load(copy)
    weights.unlink()
    with pytest.raises(ModelContractError, match="generator file missing"):
        DefectInpaintingGenerator.load(copy)
    (copy / CARD_FILE).write_text(json.dumps({"kind": "defect-inpainting", "name": "x"}))
    with pytest.raises(ModelContractError, match="not a valid generator card"):
        DefectInpaintingGenerator.load(copy)
    (copy / CARD_FILE).unlink()
    with pytest.raises(ModelContractError, match="not found; is .* a saved generator"):
        DefectInpaintingGenerator.load(copy)


def test_fit_refuses_masks_that_do_not_match_their_images(mvtec_dir: Path, tmp_path: Path) -> None:
    mask_path = next((mvtec_dir / "ground_truth" / "pit").glob("*.png"))
    cv2.imwrite(str(mask_path), np.zeros((50, 40), np.uint8))
    with pytest.raises(DatasetError, match=rf"{mask_path.name}: mask is 40×50 but its image .* is 96×96"):
        fit_generator(mvtec_dir, "g", tmp_path / "models", GeneratorFitSettings(train_steps=1))
    assert not (tmp_path / "models").exists()


def test_fit_refuses_a_class_with_no_real_examples(mvtec_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no real defect images with masks for classes \['crack'\]"):
        fit_generator(mvtec_dir, "g", tmp_path / "models", classes=["pit", "crack"])
    shutil.rmtree(mvtec_dir / "ground_truth")
    with pytest.raises(DatasetError, match="found \\[\\]"):
        fit_generator(mvtec_dir, "g", tmp_path / "models")


def test_a_grey_frame_gets_a_grey_defect(
    generator: DefectInpaintingGenerator, good_image: np.ndarray
) -> None:
    grey = cv2.cvtColor(cv2.cvtColor(good_image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    mask = generator.draw_mask("pit", grey.shape[:2], 2)
    output = generator(image=grey, mask=mask, defect_class="pit", seed=0, num_inference_steps=2)
    assert (output.image != grey).any()
    assert np.array_equal(output.image[..., 0], output.image[..., 1])
    assert np.array_equal(output.image[..., 1], output.image[..., 2])


def test_a_thin_mask_is_kept_whole_at_the_model_size() -> None:
    window = np.zeros((300, 300), bool)
    np.fill_diagonal(window, True)  # a 1 px crack, ~9× larger than the model's window
    small = model_mask(window, 32)
    back = cv2.resize(small, (300, 300), interpolation=cv2.INTER_NEAREST) > 0
    assert small.dtype == np.float32 and set(np.unique(small)) == {0.0, 1.0}
    assert back[window].all()  # every crack pixel is inside the model's mask
    assert small.mean() < 0.15  # and the mask stays thin
    up = model_mask(window[:20, :20], 32)
    assert up.shape == (32, 32) and up.sum() > 0


def test_inpainting_a_given_image_with_a_given_mask(generator: DefectInpaintingGenerator) -> None:
    """Replacing a real defect: the given image and mask, pixels away from the mask kept, reproducible."""
    image = render_part(SIM, 7, "scratch").image
    mask = np.zeros(image.shape[:2], bool)
    mask[30:34, 20:70] = True
    run: dict[str, Any] = {"image": image, "mask": mask, "defect_class": "scratch", "num_inference_steps": 2}
    plain = Sampling(resample_known=False, match_class=False)
    for sampling in (Sampling(), plain):
        first, again = (
            generator(**run, seed=3, sampling=sampling),
            generator(**run, seed=3, sampling=sampling),
        )
        assert np.array_equal(first.image, again.image)
        changed = (first.image != image).any(axis=2)
        near = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert changed[mask].mean() > 0.5 and not (changed & ~near).any()
    before = generator(**run, seed=3, sampling=plain).image
    for sampling in (Sampling(match_class=False), Sampling(resample_known=False)):
        assert not np.array_equal(generator(**run, seed=3, sampling=sampling).image, before)


def test_class_statistics_put_a_dark_defect_at_its_offset_from_the_surface(
    generator: DefectInpaintingGenerator, tiny_generator_dir: Path
) -> None:
    stats = read_card(tiny_generator_dir).class_stats["pit"]
    assert {"offset", "offset_spread"} <= set(stats)
    image = np.full((96, 96, 3), 150, np.uint8)
    mask = np.zeros((96, 96), bool)
    mask[40:56, 40:56] = True
    dark = {"offset": -60.0, "offset_spread": 0.0, "contrast": 5.0, "contrast_spread": 1.0}
    card = dataclasses.replace(generator.card, class_stats={**generator.card.class_stats, "pit": dark})
    shifted = DefectInpaintingGenerator(generator.unet, generator.scheduler, generator.masks, card)
    run: dict[str, Any] = {"image": image, "mask": mask, "defect_class": "pit", "num_inference_steps": 2}
    out = shifted(**run, seed=0).image  # the default sampling matches the class
    assert np.array_equal(out, shifted(**run, seed=0).image)
    inside = out[44:52, 44:52].astype(float)
    assert abs(inside.mean() - 90) < 8 and inside.std() < 12
    far = ~(cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
    assert (out[far] == 150).all()


def test_refreshed_class_statistics_need_the_same_data(tiny_generator_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_generator_dir, tmp_path / "copy")
    raw = json.loads((copy / CARD_FILE).read_text())
    for values in raw["class_stats"].values():
        del values["offset"], values["offset_spread"]
    (copy / CARD_FILE).write_text(json.dumps(raw))
    stats = refresh_class_stats(copy)
    assert stats == read_card(tiny_generator_dir).class_stats == read_card(copy).class_stats
    DefectInpaintingGenerator.load(copy)  # weights and digests untouched
    raw["training"]["data_digest"] = "0" * 64  # as if the data had changed since the fit
    (copy / CARD_FILE).write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match="differs from the data"):
        refresh_class_stats(copy)


def _fine_detail_std(image: np.ndarray, where: np.ndarray) -> float:
    grey = image[..., 0].astype(np.float32)
    return float((grey - cv2.GaussianBlur(grey, (0, 0), 1.0))[where].std())


def test_an_upscaled_defect_gets_the_grain_of_the_surface_around_its_mask_only(
    generator: DefectInpaintingGenerator,
) -> None:
    grain = np.random.default_rng(5).normal(0.0, 6.0, (240, 240))
    image = np.repeat(np.clip(120 + grain, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    mask = np.zeros((240, 240), bool)
    mask[50:190, 70:170] = True  # a 196 px window for a 32 px model: upscaled 6×
    run: dict[str, Any] = {"mask": mask, "defect_class": "pit", "seed": 4, "num_inference_steps": 2}
    out = generator(image=image, **run).image
    smooth = generator(image=image, **run, sampling=Sampling(match_grain=False)).image
    assert np.array_equal(out, generator(image=image, **run).image)
    assert not np.array_equal(out, generator(image=image, **{**run, "seed": 5}).image)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    surroundings = _fine_detail_std(image, cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0)
    assert _fine_detail_std(smooth, inner) < 0.5 * surroundings  # what upscaling leaves
    assert 0.6 * surroundings < _fine_detail_std(out, inner) < 1.5 * surroundings
    assert not ((out != image).any(axis=2) & ~mask).any()  # only the mask's own pixels are replaced
    feathered = generator(image=image, **run, sampling=Sampling(feather_paste=True)).image
    far = cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0  # the feathered paste: 6 px
    assert (feathered[~mask] != image[~mask]).any() and np.array_equal(feathered[far], image[far])
    assert np.array_equal(out[..., 0], out[..., 2])  # still grey
    other = image.copy()  # the pixels under the mask (a real defect, when replacing one) are never read
    other[mask] = np.random.default_rng(9).integers(0, 256, (int(mask.sum()), 1), dtype=np.uint8)
    assert np.array_equal(generator(image=other, **run).image, out)


def test_a_window_at_the_model_size_gets_no_grain(generator: DefectInpaintingGenerator) -> None:
    image = np.random.default_rng(1).integers(100, 140, (96, 96, 3), dtype=np.uint8)
    mask = np.zeros((96, 96), bool)
    mask[40:50, 40:52] = True  # window side 32 = the model's size: nothing upscaled
    run: dict[str, Any] = {"image": image, "mask": mask, "defect_class": "pit", "seed": 0}
    plain = generator(**run, num_inference_steps=2, sampling=Sampling(match_grain=False)).image
    assert np.array_equal(generator(**run, num_inference_steps=2).image, plain)


def _unet_weights(generator: DefectInpaintingGenerator) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in generator.unet.parameters()])


def test_fit_saves_the_moving_average_of_the_weights_when_asked(mvtec_dir: Path, tmp_path: Path) -> None:
    unet = UNetSettings(image_size=32, block_out_channels=(8, 16), norm_num_groups=4)
    settings = GeneratorFitSettings(unet=unet, train_steps=6, batch_size=2, crops_per_image=1)
    torch.manual_seed(settings.seed)  # the fit's own seeding: the weights before the first step
    start = torch.cat([p.detach().flatten() for p in unet.build(2).parameters()])
    last = _unet_weights(DefectInpaintingGenerator.load(fit_generator(mvtec_dir, "g", tmp_path, settings)))
    averaged_dir = fit_generator(mvtec_dir, "ema", tmp_path, dataclasses.replace(settings, ema_decay=0.999))
    averaged = _unet_weights(DefectInpaintingGenerator.load(averaged_dir))
    # an average over the path from the start to the last step: nearer the start than the last step is
    assert 0 < (averaged - start).norm() < (last - start).norm()
    assert read_card(averaged_dir).training["settings"]["ema_decay"] == 0.999


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_fit_on_a_missing_gpu_is_refused_before_any_work(mvtec_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device 'cuda': torch .* sees 0 CUDA device"):
        fit_generator(mvtec_dir, "g", tmp_path / "models", GeneratorFitSettings(device="cuda"))
    assert not (tmp_path / "models").exists()


def test_the_card_says_whether_generation_matches_class_statistics(
    tiny_generator_dir: Path, tmp_path: Path, good_image: np.ndarray
) -> None:
    copy = shutil.copytree(tiny_generator_dir, tmp_path / "copy")
    card = json.loads((copy / CARD_FILE).read_text())
    assert card["default_match_class"] is True  # what a fit writes unless told otherwise
    card["default_match_class"] = False
    (copy / CARD_FILE).write_text(json.dumps(card))
    own = DefectInpaintingGenerator.load(copy)
    assert own.default_sampling() == Sampling(match_class=False)
    mask = own.draw_mask("pit", good_image.shape[:2], 4)
    args: dict[str, Any] = {"image": good_image, "mask": mask, "defect_class": "pit", "seed": 4}
    args["num_inference_steps"] = 2
    unmatched = own(**args, sampling=Sampling(match_class=False)).image
    assert np.array_equal(own(**args).image, unmatched)
    assert not np.array_equal(own(**args, sampling=Sampling()).image, unmatched)
