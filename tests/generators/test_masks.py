"""Defect masks learned from real masks: plausible size and place, reproducible, saved and loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generators.masks import MaskSampler, template_from_mask
from pipeline.errors import DatasetError, ModelContractError


def _edge_mask(height: int, width: int, box_h: int, box_w: int) -> np.ndarray:
    """A defect in the top-left corner region, like fray on a tile edge."""
    mask = np.zeros((height, width), dtype=bool)
    mask[2 : 2 + box_h, 3 : 3 + box_w] = True
    return mask


@pytest.fixture
def sampler() -> MaskSampler:
    fray = [template_from_mask(_edge_mask(100, 200, 10, 40), f"fray-{i}") for i in range(3)]
    pit = [template_from_mask(_edge_mask(100, 100, 4, 4), "pit")]
    return MaskSampler({"fray": fray, "pit": pit})


def test_drawn_masks_keep_the_real_relative_size_and_place(sampler: MaskSampler) -> None:
    for seed in range(20):
        mask = sampler.draw("fray", (200, 400), seed)
        ys, xs = np.nonzero(mask)
        height, width = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
        # real: 10% of the height, 20% of the width; jitter is ~20%
        assert 0.05 * 200 <= height <= 0.2 * 200 and 0.1 * 400 <= width <= 0.4 * 400
        # real centre at 7% / 11.5%: with flips, near one of the corners, never the middle
        cy, cx = ys.mean() / 200, xs.mean() / 400
        assert min(cy, 1 - cy) < 0.25 and min(cx, 1 - cx) < 0.3


def test_same_seed_same_mask_and_seeds_differ(sampler: MaskSampler) -> None:
    assert np.array_equal(sampler.draw("fray", (120, 160), 7), sampler.draw("fray", (120, 160), 7))
    assert len({sampler.draw("fray", (120, 160), s).tobytes() for s in range(8)}) > 1


def test_unknown_class_and_empty_masks_are_refused(sampler: MaskSampler) -> None:
    with pytest.raises(DatasetError, match=r"'crack' has no real examples; known classes: \['fray', 'pit'\]"):
        sampler.draw("crack", (64, 64), 0)
    with pytest.raises(DatasetError, match="img-3: mask is empty"):
        template_from_mask(np.zeros((8, 8), bool), "img-3")
    with pytest.raises(DatasetError, match=r"\['crack'\] have no real masks"):
        MaskSampler({"crack": []})


def test_save_and_load_round_trip(sampler: MaskSampler, tmp_path: Path) -> None:
    path = tmp_path / "masks.npz"
    sampler.save(path)
    loaded = MaskSampler.load(path)
    assert loaded.classes == ["fray", "pit"]
    assert np.array_equal(loaded.draw("pit", (50, 50), 3), sampler.draw("pit", (50, 50), 3))
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelContractError, match="masks.npz: not a readable mask statistics file"):
        MaskSampler.load(path)
