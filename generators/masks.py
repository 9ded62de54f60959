"""Plausible defect masks per class, learned from the real masks of that class.

Each real mask is kept as a small template (its bounding-box crop) with its size
relative to the image and where its centre sat. Drawing a mask picks one
template, flips it, jitters its size and position, and places it in the new
image at the same relative place: fray stays at the edge, blowholes stay small.
Templates rather than a parametric model, because real defect outlines (frayed
edges, branching cracks) are not ellipses and a few dozen examples are enough
to resample from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import DatasetError, ModelContractError

TEMPLATE_SIDE = 96  # templates are stored at most this large; shapes survive, files stay small
SIZE_JITTER = 0.2  # log-normal sigma of the size change relative to the template's real size
POSITION_JITTER = 0.05  # of the image side


@dataclass(frozen=True, slots=True)
class MaskTemplate:
    """One real mask: its outline (bool, bounding-box crop) and its size and centre relative to the image."""

    outline: np.ndarray
    height_frac: float
    width_frac: float
    center_y_frac: float
    center_x_frac: float


def template_from_mask(mask: np.ndarray, where: str) -> MaskTemplate:
    """The template of one real mask (bool H×W); refuses an empty mask, naming ``where``."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise DatasetError(f"{where}: mask is empty")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    outline: np.ndarray = mask[y0:y1, x0:x1].astype(np.uint8)
    scale = min(1.0, TEMPLATE_SIDE / max(outline.shape))
    if scale < 1.0:
        size = (max(1, round(outline.shape[1] * scale)), max(1, round(outline.shape[0] * scale)))
        outline = cv2.resize(outline, size, interpolation=cv2.INTER_AREA)
    height, width = mask.shape
    return MaskTemplate(
        outline=outline > 0,
        height_frac=(y1 - y0) / height,
        width_frac=(x1 - x0) / width,
        center_y_frac=(y0 + y1) / 2 / height,
        center_x_frac=(x0 + x1) / 2 / width,
    )


class MaskSampler:
    """Draws masks of each class from that class's real templates; reproducible from a seed."""

    def __init__(self, templates: dict[str, list[MaskTemplate]]) -> None:
        empty = sorted(c for c, t in templates.items() if not t)
        if empty:
            raise DatasetError(f"defect classes {empty} have no real masks to learn shapes from")
        self.templates = templates

    @property
    def classes(self) -> list[str]:
        return sorted(self.templates)

    def draw(self, defect_class: str, shape: tuple[int, int], seed: int) -> np.ndarray:
        """A bool mask of ``shape`` for one defect of ``defect_class``."""
        if defect_class not in self.templates:
            raise DatasetError(
                f"defect class {defect_class!r} has no real examples; known classes: {self.classes}"
            )
        rng = np.random.default_rng(seed)
        options = self.templates[defect_class]
        template = options[int(rng.integers(len(options)))]
        outline = template.outline
        center_y, center_x = template.center_y_frac, template.center_x_frac
        if rng.random() < 0.5:
            outline, center_x = outline[:, ::-1], 1.0 - center_x
        if rng.random() < 0.5:
            outline, center_y = outline[::-1, :], 1.0 - center_y
        height, width = shape
        size_factor = float(np.exp(rng.normal(0.0, SIZE_JITTER)))
        box_h = int(np.clip(round(template.height_frac * height * size_factor), 2, height))
        box_w = int(np.clip(round(template.width_frac * width * size_factor), 2, width))
        resized = cv2.resize(outline.astype(np.float32), (box_w, box_h), interpolation=cv2.INTER_LINEAR) > 0.5
        if not resized.any():  # a thin outline can vanish when shrunk: keep its centre pixel
            resized[box_h // 2, box_w // 2] = True
        cy = (center_y + rng.normal(0.0, POSITION_JITTER)) * height
        cx = (center_x + rng.normal(0.0, POSITION_JITTER)) * width
        y0 = int(np.clip(round(cy - box_h / 2), 0, height - box_h))
        x0 = int(np.clip(round(cx - box_w / 2), 0, width - box_w))
        mask = np.zeros(shape, dtype=bool)
        mask[y0 : y0 + box_h, x0 : x0 + box_w] = resized
        return mask

    def save(self, path: Path) -> None:
        """One .npz: the outlines, plus a JSON index of classes and relative sizes."""
        arrays: dict[str, np.ndarray] = {}
        index: dict[str, list[list[float]]] = {}
        for defect_class, templates in sorted(self.templates.items()):
            index[defect_class] = []
            for i, t in enumerate(templates):
                arrays[f"{defect_class}/{i}"] = t.outline
                index[defect_class].append([t.height_frac, t.width_frac, t.center_y_frac, t.center_x_frac])
        arrays["index.json"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> MaskSampler:
        try:
            with np.load(path) as data:
                index = json.loads(data["index.json"].tobytes())
                templates = {
                    c: [MaskTemplate(data[f"{c}/{i}"], *fracs) for i, fracs in enumerate(rows)]
                    for c, rows in index.items()
                }
        except (OSError, ValueError, KeyError) as exc:
            raise ModelContractError(f"{path}: not a readable mask statistics file ({exc})") from exc
        return cls(templates)
