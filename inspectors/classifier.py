"""Defect-type specialist: which of the line's defect classes an anomaly region shows (ONNX Runtime).

It looks at a square crop around the strongest region the anomaly specialist
found (the same crop rule it was trained with); frames without a region get
no defect-type finding. The decision never rests on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inspectors.onnx_session import open_model
from inspectors.preprocess import region_crop, to_model_input
from pipeline.errors import ModelContractError
from pipeline.types import Finding, FindingKind, Frame


class DefectTypeInspector:
    name = "classifier"

    def __init__(
        self,
        model_dir: Path,
        *,
        classes: Sequence[str] | None = None,
        batch_size: int = 16,
        threads: int | None = None,
    ) -> None:
        self.session, self.card = open_model(Path(model_dir), threads)
        self.version = self.card.version
        self.providers = tuple(self.session.get_providers())
        self.classes: list[str] = list(self.card.training.get("classes", []))
        if classes is not None and sorted(classes) != sorted(self.classes):
            raise ModelContractError(
                f"{model_dir}: classifier knows classes {self.classes}, "
                f"the line config expects {sorted(classes)}"
            )
        self.batch_size = batch_size

    def probabilities(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for start in range(0, len(images_bgr), self.batch_size):
            batch = to_model_input(images_bgr[start : start + self.batch_size], self.card.preprocessing)
            (logits,) = self.session.run(["logits"], {"image": batch})
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.concatenate(out) if out else np.empty((0, len(self.classes)), np.float32)

    def inspect_regions(
        self, frames: Sequence[Frame], found: Sequence[Sequence[Finding]]
    ) -> list[list[Finding]]:
        targets = []
        for i, (frame, findings) in enumerate(zip(frames, found, strict=True)):
            regions = [f.region for f in findings if f.kind is FindingKind.ANOMALY and f.region is not None]
            if regions:
                targets.append((i, regions[0], region_crop(frame.pixels, regions[0].box)))
        out: list[list[Finding]] = [[] for _ in frames]
        probs = self.probabilities([crop for _, _, crop in targets])
        for (i, region, _), p in zip(targets, probs, strict=True):
            label = self.classes[int(p.argmax())]
            out[i].append(
                Finding(
                    self.name,
                    self.version,
                    FindingKind.DEFECT_CLASS,
                    score=float(p.max()),
                    label=label,
                    region=region,
                )
            )
        return out
