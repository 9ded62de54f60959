"""The square window around a defect that the diffusion model sees, for training and generation alike.

The model works at one small size (64 px by default), whatever the defect's
size: the window is a little larger than the mask's bounding box (so the model
sees the surface around it), at least ``min_side`` pixels, then resized. Using
the same rule in training and generation keeps the scale the model learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CONTEXT = 1.4  # window side relative to the mask's longer side
GRAIN_PATCH = 16  # side of the surface patches an upscaled window's grain is made of (halved until one fits)


@dataclass(frozen=True, slots=True)
class CropBox:
    y: int
    x: int
    side: int

    def cut(self, array: np.ndarray) -> np.ndarray:
        return array[self.y : self.y + self.side, self.x : self.x + self.side]


def crop_around(mask: np.ndarray, min_side: int, rng: np.random.Generator | None = None) -> CropBox:
    """A square window containing the mask's box (as far as the image allows); ``rng`` jitters it."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise ValueError("cannot crop around an empty mask")
    height, width = mask.shape
    box_h, box_w = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
    side = min(max(min_side, int(np.ceil(CONTEXT * max(box_h, box_w)))), height, width)
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    if rng is not None:
        slack_y, slack_x = max(0, side - box_h) / 2, max(0, side - box_w) / 2
        cy += rng.uniform(-slack_y, slack_y)
        cx += rng.uniform(-slack_x, slack_x)
    y = int(np.clip(round(cy - side / 2), 0, height - side))
    x = int(np.clip(round(cx - side / 2), 0, width - side))
    return CropBox(y, x, side)


def resize_square(array: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    if array.shape[0] < size:
        interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC
    return cv2.resize(array, (size, size), interpolation=interpolation)


def model_mask(mask_window: np.ndarray, size: int) -> np.ndarray:
    """A window's mask at the model's size (float 0/1): every low-resolution pixel that any mask pixel
    touches is masked.

    Nearest sampling drops thin parts: on the magnetic tile cracks it left 29 % of the mask's pixels
    unmasked on average (up to 66 %), so the model saw those defect pixels as known surface and copied
    them (or, on a good frame, the mask claimed a defect where the frame stayed plain).
    """
    if mask_window.shape[0] <= size:
        small = resize_square(mask_window.astype(np.uint8), size, nearest=True) > 0
    else:
        small = cv2.resize(mask_window.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0
    return small.astype(np.float32)


def paste_window(
    image: np.ndarray,
    window: np.ndarray,
    mask: np.ndarray,
    crop: CropBox,
    grain: np.random.Generator | None = None,
    *,
    feather: bool = True,
) -> np.ndarray:
    """Scale a generated window back to ``crop`` and blend it in only around the mask (feathered; with
    ``feather`` False, only the mask's own pixels are replaced, hard-edged).

    The rest of the frame stays byte for byte the real image, so the mask is the ground truth.
    A grey frame gets a grey defect: a small model's colour cast would give it away at once.
    With ``grain``, a window that was upscaled gets the fine detail of the real surface around the mask
    (``add_surface_grain``), which upscaling cannot produce.
    """
    generated = cv2.resize(window, (crop.side, crop.side), interpolation=cv2.INTER_CUBIC)
    if _is_grey(crop.cut(image)):
        generated = cv2.cvtColor(cv2.cvtColor(generated, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    dilate = max(1, crop.side // 64)
    region = cv2.dilate(crop.cut(mask).astype(np.uint8), np.ones((2 * dilate + 1,) * 2, np.uint8))
    scale = crop.side / window.shape[0]
    if grain is not None and scale > 1:
        generated = add_surface_grain(generated, crop.cut(image), region > 0, scale, grain)
    weight = cv2.GaussianBlur(region.astype(np.float32), (2 * dilate + 1,) * 2, 0) if feather else 0.0
    weight = np.maximum(weight, crop.cut(mask).astype(np.float32))[..., None]
    original = crop.cut(image).astype(np.float32)
    blended = generated.astype(np.float32) * weight + original * (1.0 - weight)
    out = image.copy()
    crop.cut(out)[...] = np.round(blended).astype(np.uint8)
    return out


def fine_detail(array: np.ndarray, sigma: float, valid: np.ndarray) -> np.ndarray:
    """``array`` (H×W×C) minus its Gaussian blur, the blur averaging ``valid`` (H×W bool) pixels only, so the
    detail at a valid pixel does not depend on any other pixel's value."""
    values = array.astype(np.float32)
    weight = valid.astype(np.float32)
    blurred = cv2.GaussianBlur(values * weight[..., None], (0, 0), sigma).reshape(values.shape)
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-6)
    return values - blurred / norm[..., None]


def shuffled_patches(
    detail: np.ndarray, valid: np.ndarray, rng: np.random.Generator, patch: int = GRAIN_PATCH
) -> np.ndarray | None:
    """An array shaped like ``detail`` (H×W×C) tiled with ``patch``-px patches of it drawn at random among
    those lying wholly on ``valid`` pixels, so the texture (streaks, correlation between neighbouring
    pixels and between channels) is kept; smaller patches where none fits, None where not even 2 px do."""
    height, width = detail.shape[:2]
    fits = cv2.erode(
        valid.astype(np.uint8),
        np.ones((patch, patch), np.uint8),
        anchor=(0, 0),
        borderType=cv2.BORDER_CONSTANT,
    )
    starts = np.argwhere(fits[: height - patch + 1, : width - patch + 1] > 0)
    if len(starts) == 0:
        return shuffled_patches(detail, valid, rng, patch // 2) if patch > 2 else None
    rows, cols = -(-height // patch), -(-width // patch)
    picked = starts[rng.integers(len(starts), size=rows * cols)]
    steps = np.arange(patch)
    patches = detail[picked[:, 0, None, None] + steps[:, None], picked[:, 1, None, None] + steps[None, :]]
    tiled = patches.reshape(rows, cols, patch, patch, -1).transpose(0, 2, 1, 3, 4)
    return tiled.reshape(rows * patch, cols * patch, -1)[:height, :width]


def add_surface_grain(
    generated: np.ndarray, original: np.ndarray, region: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """``generated`` (a window upscaled by ``scale``) plus the real surface's fine detail (what is finer than
    a blur of ``scale / 2`` px: about the band that upscaling leaves empty), measured in ``original`` only
    outside ``region`` and shuffled in patches (``shuffled_patches``). No pixel under ``region`` is read."""
    outside = ~region
    detail = fine_detail(original, max(0.5, scale / 2), outside)
    grain = shuffled_patches(detail, outside, rng)
    if grain is None:
        return generated
    return np.clip(generated.astype(np.float32) + grain, 0, 255).round().astype(np.uint8)


def _is_grey(bgr: np.ndarray) -> bool:
    return bool(np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2]))
