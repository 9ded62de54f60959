"""Image preprocessing shared by fitting (torch) and inspection (ONNX Runtime).

One function so the two can never drift apart; its parameters are recorded in
each model's ``model.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

ASPECTS = ("stretch", "pad")


@dataclass(frozen=True, slots=True)
class Preprocessing:
    size: tuple[int, int]  # (height, width) of the model input
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # "stretch": every image resized to ``size``, its aspect ratio not kept; "pad": the shorter side
    # mirrored outwards to a square first, so textures keep their proportions
    aspect: str = "stretch"

    def __post_init__(self) -> None:
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect {self.aspect!r}: expected one of {ASPECTS}")

    def to_json(self) -> dict[str, object]:
        return {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "color": "RGB",
            "aspect": self.aspect,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Preprocessing:
        size, mean, std = data["size"], data["mean"], data["std"]
        aspect = str(data.get("aspect", "stretch"))  # models from before the choice stretched
        return cls(tuple(size), tuple(mean), tuple(std), aspect)  # type: ignore[arg-type]

    def image_part(self, model_map: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
        """The part of a model-input-sized map that covers an image of ``image_shape``."""
        if self.aspect == "stretch":
            return model_map
        x, y, w, h = pad_square_box(image_shape[0], image_shape[1])
        side = max(image_shape[0], image_shape[1])
        sy, sx = model_map.shape[0] / side, model_map.shape[1] / side
        top, left = round(y * sy), round(x * sx)
        return model_map[top : top + max(1, round(h * sy)), left : left + max(1, round(w * sx))]


def pad_square_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of an image of ``height`` × ``width`` inside its padded square."""
    side = max(height, width)
    return (side - width) // 2, (side - height) // 2, width, height


def pad_square(image: np.ndarray) -> np.ndarray:
    """The image centred in a square, the shorter side's borders mirrored outwards."""
    x, y, w, h = pad_square_box(image.shape[0], image.shape[1])
    side = max(w, h)
    return cv2.copyMakeBorder(image, y, side - h - y, x, side - w - x, cv2.BORDER_REFLECT_101)


def to_model_input(images_bgr: Sequence[np.ndarray], prep: Preprocessing) -> np.ndarray:
    """BGR uint8 images of any size -> float32 N×3×H×W, (padded,) resized and normalised."""
    h, w = prep.size
    batch = np.empty((len(images_bgr), 3, h, w), dtype=np.float32)
    # (x / 255 - mean) / std as one multiply-add: x * scale + offset
    mean = np.asarray(prep.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(prep.std, dtype=np.float32).reshape(3, 1, 1)
    scale, offset = 1.0 / (255.0 * std), -mean / std
    for i, image in enumerate(images_bgr):
        if prep.aspect == "pad":
            image = pad_square(image)
        interpolation = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
        rgb = cv2.cvtColor(cv2.resize(image, (w, h), interpolation=interpolation), cv2.COLOR_BGR2RGB)
        np.multiply(rgb.transpose(2, 0, 1), scale, out=batch[i])
        batch[i] += offset
    return batch


def region_crop(
    image: np.ndarray, box: tuple[int, int, int, int], context: float = 2.0, min_px: int = 64
) -> np.ndarray:
    """A square around a region, ``context`` times its longer side (at least ``min_px``), inside the image.

    Used both to train the defect-type classifier (boxes from ground-truth masks)
    and at inspection (boxes from anomaly regions), so the two see the same views.
    """
    x, y, w, h = box
    height, width = image.shape[:2]
    side = min(max(int(max(w, h) * context), min_px), height, width)
    cx, cy = x + w // 2, y + h // 2
    x0 = min(max(cx - side // 2, 0), width - side)
    y0 = min(max(cy - side // 2, 0), height - side)
    return image[y0 : y0 + side, x0 : x0 + side]


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x, y, w, h) of a mask's non-zero pixels; None when empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
