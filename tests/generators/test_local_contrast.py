"""The class's local contrast: measured on real defects at fit, matched inside the mask at generation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generators.crops import crop_around, local_contrast
from generators.diffusion import DefectInpaintingGenerator, Sampling, read_card
from generators.training.fit_generator import DefectExample, class_pixel_stats


@pytest.fixture(scope="module")
def generator(tiny_generator_dir: Path) -> DefectInpaintingGenerator:
    return DefectInpaintingGenerator.load(tiny_generator_dir)


def _surface(
    seed: int, inside_noise: float, shape: tuple[int, int] = (128, 128)
) -> tuple[np.ndarray, np.ndarray]:
    """A grey surface (grain of σ = 3) with a square mask whose grain has σ = ``inside_noise`` and which
    carries a large, smooth shading (a dark-to-light ramp of 40 grey levels) that is not local contrast."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    mask[40:80, 44:84] = True
    grey = 130 + rng.normal(0.0, 3.0, shape)
    ramp = np.linspace(-20, 20, 40)[None, :]
    grey[40:80, 44:84] = 110 + ramp + rng.normal(0.0, inside_noise, (40, 40))
    image = np.repeat(np.clip(grey, 0, 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return image, mask


def test_the_local_contrast_of_a_class_is_the_fine_grain_inside_relative_to_outside() -> None:
    examples = [DefectExample(*_surface(seed, 9.0), "pit", f"pit-{seed}") for seed in range(3)]
    examples += [DefectExample(*_surface(seed, 3.0), "flat", f"flat-{seed}") for seed in range(3)]
    stats = class_pixel_stats(examples, 64)
    assert stats["pit"]["local_contrast"] == pytest.approx(3.0, rel=0.15)
    assert stats["flat"]["local_contrast"] == pytest.approx(1.0, rel=0.15)
    assert 0 < stats["pit"]["local_contrast_spread"] < 0.1
    # the plain contrast also counts the shading: it cannot tell the two classes' grain apart as well
    assert stats["flat"]["contrast"] > 10
    image, mask = _surface(0, 9.0)
    crop = crop_around(mask, 64)
    assert crop.side == 64  # measured without resizing, so the known grain is what is measured
    assert local_contrast(np.full((64, 64, 3), 7.0, np.float32), crop.cut(mask)) is None  # flat: none


def test_fitted_cards_carry_the_local_contrast(tiny_generator_dir: Path) -> None:
    for stats in read_card(tiny_generator_dir).class_stats.values():
        assert stats["local_contrast"] > 0 and stats["local_contrast_spread"] >= 0


def _with_stats(generator: DefectInpaintingGenerator, **local: float) -> DefectInpaintingGenerator:
    stats = {"offset": 0.0, "offset_spread": 0.0, "contrast": 20.0, "contrast_spread": 1.0, **local}
    card = dataclasses.replace(generator.card, class_stats={**generator.card.class_stats, "pit": stats})
    return DefectInpaintingGenerator(generator.unet, generator.scheduler, generator.masks, card)


def test_generation_follows_the_class_local_contrast_without_reading_the_masked_pixels(
    generator: DefectInpaintingGenerator,
) -> None:
    grain = np.random.default_rng(1).normal(130.0, 5.0, (96, 96))
    image = np.repeat(grain.round().astype(np.uint8)[..., None], 3, axis=2)
    mask = np.zeros((96, 96), bool)
    mask[38:58, 38:58] = True  # a 32 px window for a 32 px model: what is generated is what is pasted
    crop = crop_around(mask, 32)
    assert crop.side == 32
    run: dict[str, Any] = {
        "mask": mask,
        "defect_class": "pit",
        "seed": 2,
        "num_inference_steps": 2,
        "sampling": Sampling(match_local_contrast=True),
    }
    for target in (0.6, 2.5):
        shifted = _with_stats(generator, local_contrast=target, local_contrast_spread=0.0)
        out = shifted(image=image, **run).image
        assert np.array_equal(out, shifted(image=image, **run).image)  # same seed, same pixels
        other = image.copy()  # the pixels under the mask (a real defect, when replacing one) are never read
        other[mask] = np.random.default_rng(9).integers(0, 256, (int(mask.sum()), 1), dtype=np.uint8)
        assert np.array_equal(shifted(image=other, **run).image, out)
        # the same statistic as at fit, on what was pasted (rounded to grey levels): the drawn target
        assert local_contrast(crop.cut(out).astype(np.float32), crop.cut(mask)) == pytest.approx(
            target, rel=0.15
        )
    drawn = _with_stats(generator, local_contrast=1.0, local_contrast_spread=0.5)
    assert not np.array_equal(drawn(image=image, **run).image, drawn(image=image, **{**run, "seed": 3}).image)


def test_a_card_without_the_local_contrast_samples_as_before(generator: DefectInpaintingGenerator) -> None:
    image, mask = _surface(1, 12.0, (96, 96))
    run: dict[str, Any] = {
        "image": image,
        "mask": mask,
        "defect_class": "pit",
        "seed": 2,
        "num_inference_steps": 2,
    }
    before = _with_stats(generator, local_contrast=3.0, local_contrast_spread=0.2)
    old_card = _with_stats(generator)
    expected = before(**run).image  # off by default
    on = Sampling(match_local_contrast=True)
    assert np.array_equal(old_card(**run, sampling=on).image, expected)
    assert not np.array_equal(before(**run, sampling=on).image, expected)
