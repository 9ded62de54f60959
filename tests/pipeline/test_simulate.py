"""The simulated line must be reproducible and its ground truth must be the truth.

Inspectors are fitted on these images and scored against these masks, so a mask
that misses changed pixels, or a "good" part that is not clean, would silently
corrupt every metric computed downstream.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from pipeline.errors import FrameError
from pipeline.images import encode_png
from pipeline.simulate import (
    DEFECT_KINDS,
    LIGHTING_PERIOD,
    SimulatedLine,
    SimulatedPart,
    SimulationSettings,
    choose_defect,
    indices_over_lighting_cycle,
    render_part,
)

SETTINGS = SimulationSettings(seed=7)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def pixel_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest per-channel absolute difference at each pixel."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


def test_same_seed_and_index_give_byte_identical_parts() -> None:
    first = render_part(SETTINGS, 12)
    again = render_part(SimulationSettings(seed=7), 12)
    assert encode_png(first.image) == encode_png(again.image)
    assert np.array_equal(first.mask, again.mask)
    assert (first.defect, first.lot_code) == (again.defect, again.lot_code)


def test_different_index_or_seed_gives_a_different_image() -> None:
    part = render_part(SETTINGS, 12, defect=None).image
    assert not np.array_equal(part, render_part(SETTINGS, 13, defect=None).image)
    assert not np.array_equal(part, render_part(SimulationSettings(seed=8), 12, None).image)


@pytest.mark.parametrize("size", [96, 320])
def test_image_and_mask_have_the_frame_shape(size: int) -> None:
    part = render_part(SimulationSettings(size=size), 0, defect="pit")
    assert part.image.shape == (size, size, 3) and part.image.dtype == np.uint8
    assert part.mask.shape == (size, size) and part.mask.dtype == np.uint8


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.75, 1.0])
def test_defect_rate_is_respected(rate: float) -> None:
    settings = SimulationSettings(defect_rate=rate, seed=3)
    decisions = [choose_defect(settings, index) for index in range(2000)]
    observed = sum(d is not None for d in decisions) / len(decisions)
    assert abs(observed - rate) < 0.04


def test_auto_defects_come_only_from_the_configured_kinds() -> None:
    settings = SimulationSettings(defect_rate=1.0, defect_kinds=("crack", "edge_chip"))
    assert {choose_defect(settings, index) for index in range(200)} == {"crack", "edge_chip"}


def test_auto_rendering_follows_the_line_decision() -> None:
    settings = SimulationSettings(seed=5, defect_rate=0.5)
    parts = list(SimulatedLine(settings).parts(0, 16))
    assert [p.index for p in parts] == list(range(16))
    assert [p.defect for p in parts] == [choose_defect(settings, i) for i in range(16)]
    assert {p.defect is None for p in parts} == {True, False}
    for part in parts:
        assert (part.defect is None) == (not part.mask.any())


def test_line_part_is_render_part() -> None:
    line = SimulatedLine(SETTINGS)
    assert np.array_equal(line.part(4).image, render_part(SETTINGS, 4).image)
    with pytest.raises(ValueError, match="count"):
        line.parts(0, -1)


def test_good_parts_have_empty_masks() -> None:
    for index in range(5):
        part = render_part(SETTINGS, index, defect=None)
        assert part.defect is None and not part.mask.any()


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_defect_changes_exactly_the_masked_pixels(kind: str, index: int) -> None:
    bad = render_part(SETTINGS, index, defect=kind)
    good = render_part(SETTINGS, index, defect=None)
    inside = bad.mask > 0
    size = SETTINGS.size
    assert bad.defect == kind and bad.lot_code == good.lot_code
    assert set(np.unique(bad.mask).tolist()) == {0, 255}
    assert 40 <= inside.sum() <= 0.05 * size * size
    difference = pixel_difference(bad.image, good.image)
    assert difference[inside].mean() > 25, "defect is too faint inside its mask"
    outside = bad.mask == 0  # defects are composited through their mask: nothing else may move
    assert difference[outside].max() == 0, "defect changed pixels outside its mask"


@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_defect_sits_on_the_part_and_survives_downscaling(kind: str) -> None:
    bad = render_part(SETTINGS, 3, defect=kind)
    good = render_part(SETTINGS, 3, defect=None)
    ys, xs = np.nonzero(bad.mask)
    centre, reach = SETTINGS.size / 2, 0.38 * SETTINGS.size + SETTINGS.jitter_px * 1.5 + 1
    assert np.hypot(xs - centre, ys - centre).max() <= reach, "defect lies off the disc"
    assert np.median(grey(good.image)[bad.mask > 0]) > 90, "defect lies in a hole or off the part"
    small = [cv2.resize(p.image, (224, 224), interpolation=cv2.INTER_AREA) for p in (bad, good)]
    assert pixel_difference(*small).max() > 50, "defect vanishes at 224 px"


def test_missing_print_leaves_the_label_blank() -> None:
    part = render_part(SETTINGS, 2, defect="missing_print")
    assert grey(part.image)[part.mask > 0].min() > 120
    good = render_part(SETTINGS, 2, defect=None)
    assert grey(good.image)[part.mask > 0].min() < 90  # where the ink would have been


def test_smear_spreads_ink_beyond_the_printed_text() -> None:
    bad = render_part(SETTINGS, 1, defect="smeared_print")
    good = render_part(SETTINGS, 1, defect=None)
    text_box = render_part(SETTINGS, 1, defect="missing_print").mask > 0
    assert (bad.mask > 0)[~text_box].sum() > 50
    beyond = (bad.mask > 0) & ~text_box
    assert grey(bad.image)[beyond].mean() < grey(good.image)[beyond].mean() - 15


def test_lot_codes_vary_and_follow_the_format() -> None:
    codes = [render_part(SETTINGS, index, defect=None).lot_code for index in range(20)]
    assert all(re.fullmatch(r"[A-Z][0-9]-[0-9]{4}", code) for code in codes), codes
    assert len(set(codes)) >= 18


def test_lighting_drifts_over_the_run_only_when_asked() -> None:
    def brightness_range(drift: float) -> float:
        settings = SimulationSettings(lighting_drift=drift, jitter_px=0, seed=1)
        means = [grey(render_part(settings, i, None).image).mean() for i in range(0, 240, 30)]
        return (max(means) - min(means)) / float(np.mean(means))

    assert brightness_range(0.0) < 0.02
    assert brightness_range(0.2) > 0.15


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", 64),
        ("defect_rate", 1.5),
        ("defect_rate", -0.1),
        ("seed", -1),
        ("lighting_drift", 0.9),
        ("jitter_px", -1),
        ("jitter_px", 100),
        ("defect_kinds", ()),
        ("defect_kinds", ("crack", "dent")),
    ],
)
def test_invalid_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{field}: expected"):
        SimulationSettings(**{field: value})  # type: ignore[arg-type]


def test_invalid_render_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="dent"):
        render_part(SETTINGS, 0, defect="dent")
    with pytest.raises(ValueError, match="index"):
        render_part(SETTINGS, -1)


def test_part_refuses_a_mask_that_contradicts_its_label() -> None:
    image, mask = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="mask"):
        SimulatedPart(image, mask, "crack", "A1-0001", 0, 0)
    mask[2, 2] = 255
    with pytest.raises(ValueError, match="mask"):
        SimulatedPart(image, mask, None, "A1-0001", 0, 0)


def test_encode_png_round_trips_and_reports_failure() -> None:
    image = render_part(SETTINGS, 0).image
    decoded = cv2.imdecode(np.frombuffer(encode_png(image), np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and np.array_equal(decoded, image)
    with pytest.raises(FrameError):
        encode_png(np.zeros((0, 0, 3), np.uint8))


def test_fit_parts_see_the_whole_lighting_cycle() -> None:
    sim = SimulationSettings(size=128, seed=3)
    indices = indices_over_lighting_cycle(16, 10_000_000)
    assert len(set(indices)) == 16 and indices[-1] - indices[0] >= LIGHTING_PERIOD * 15 / 16
    fitted = [render_part(sim, i, defect=None).image.mean() for i in indices]
    line = [render_part(sim, i, defect=None).image.mean() for i in range(0, LIGHTING_PERIOD, 8)]
    # 16 consecutive parts cover a quarter of the brightness the line runs through; spread, most of it
    covered = (min(max(fitted), max(line)) - max(min(fitted), min(line))) / (max(line) - min(line))
    assert covered >= 0.7
