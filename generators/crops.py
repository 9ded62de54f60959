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


def paste_window(image: np.ndarray, window: np.ndarray, mask: np.ndarray, crop: CropBox) -> np.ndarray:
    """Scale a generated window back to ``crop`` and blend it in only around the mask (feathered).

    The rest of the frame stays byte for byte the real image, so the mask is the ground truth.
    A grey frame gets a grey defect: a small model's colour cast would give it away at once.
    """
    generated = cv2.resize(window, (crop.side, crop.side), interpolation=cv2.INTER_CUBIC)
    if _is_grey(crop.cut(image)):
        generated = cv2.cvtColor(cv2.cvtColor(generated, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    dilate = max(1, crop.side // 64)
    region = cv2.dilate(crop.cut(mask).astype(np.uint8), np.ones((2 * dilate + 1,) * 2, np.uint8))
    weight = cv2.GaussianBlur(region.astype(np.float32), (2 * dilate + 1,) * 2, 0)
    weight = np.maximum(weight, crop.cut(mask).astype(np.float32))[..., None]
    original = crop.cut(image).astype(np.float32)
    blended = generated.astype(np.float32) * weight + original * (1.0 - weight)
    out = image.copy()
    crop.cut(out)[...] = np.round(blended).astype(np.uint8)
    return out


def _is_grey(bgr: np.ndarray) -> bool:
    return bool(np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2]))
