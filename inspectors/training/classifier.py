"""Defect-type classifier: pretrained EfficientNet-Lite0 features + a trained linear head.

The backbone stays frozen (few labelled defects per class on a real line; a
linear probe on ImageNet features is what that amount of data supports); the
head is fitted on cached pooled features of each image and its flips. The
exported ONNX graph is backbone + pooling + head: ``image`` -> ``logits``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspectors.model_card import ONNX_FILE, ModelCard
from inspectors.preprocess import Preprocessing, mask_box, region_crop, to_model_input
from inspectors.training.efficientnet_lite import (
    IMAGENET_LITE_MEAN,
    IMAGENET_LITE_STD,
    EfficientNetLite,
    load_pretrained,
)
from pipeline.datasets import digest_files
from pipeline.decide import Thresholds
from pipeline.errors import DatasetError
from pipeline.images import IMAGE_SUFFIXES, read_image, read_mask
from pipeline.types import sha256_hex
from pipeline.versions import version_folder

log = logging.getLogger(__name__)

_CHUNK = 16  # images per forward pass


class PooledFeatures(nn.Module):
    def __init__(self, backbone: EfficientNetLite) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.features(x, len(b._blocks) - 1)[-1]
        x = b.act(b._bn1(b._conv_head(x)))
        return x.mean(dim=(2, 3))


class DefectClassifier(nn.Module):
    def __init__(self, features: PooledFeatures, head: nn.Linear) -> None:
        super().__init__()
        self.features, self.head = features, head

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


@dataclass(frozen=True, slots=True)
class LabelledImages:
    paths: list[Path]
    labels: list[int]
    classes: list[str]
    test_paths: list[Path] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)


def stratified_split(root: Path, holdout_every: int = 4) -> LabelledImages:
    """Classes are the defect folders under ``test/`` (and ``train/<class>/`` when present).

    Per class, sorted by name, every ``holdout_every``-th image is held out for
    the accuracy figure; the rest train the head.
    """
    by_class: dict[str, list[Path]] = {}
    for split in ("train", "test"):
        folder = Path(root) / split
        if folder.is_dir():
            for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "good"):
                by_class.setdefault(sub.name, []).extend(
                    sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                )
    empty = [c for c, paths in by_class.items() if len(paths) < 2]
    if len(by_class) < 2 or empty:
        raise DatasetError(
            f"{root}: a classifier needs at least two defect classes with 2+ images each "
            f"(found { ({c: len(p) for c, p in by_class.items()}) })"
        )
    classes = sorted(by_class)
    out = LabelledImages([], [], classes)
    for index, name in enumerate(classes):
        for i, path in enumerate(by_class[name]):
            held = i % holdout_every == 0
            (out.test_paths if held else out.paths).append(path)
            (out.test_labels if held else out.labels).append(index)
    return out


def _view(path: Path, root: Path) -> np.ndarray:
    """The image, cropped around its ground-truth defect when the dataset has a mask for it."""
    image = read_image(path)
    mask_path = root / "ground_truth" / path.parent.name / f"{path.stem}_mask.png"
    if mask_path.is_file():
        box = mask_box(read_mask(mask_path, image.shape[:2]))
        if box is not None:
            return region_crop(image, box)
    return image


def _features(model: PooledFeatures, images: list[np.ndarray], prep: Preprocessing) -> torch.Tensor:
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), _CHUNK):
            batch = torch.from_numpy(to_model_input(images[start : start + _CHUNK], prep))
            chunks.append(torch.cat([model(batch), model(batch.flip(-1)), model(batch.flip(-2))]))
    return torch.cat(chunks)


def _fit_head(x: torch.Tensor, y: torch.Tensor, n_classes: int, epochs: int = 300) -> nn.Linear:
    torch.manual_seed(0)
    head = nn.Linear(x.shape[1], n_classes)
    counts = torch.bincount(y, minlength=n_classes).float()
    loss_fn = nn.CrossEntropyLoss(
        weight=counts.sum() / (n_classes * counts.clamp_min(1))
    )  # rare classes count
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-2)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xn = (x - mean) / std
    for _ in range(epochs):
        opt.zero_grad()
        loss_fn(head(xn), y).backward()
        opt.step()
    with torch.no_grad():  # fold the feature standardisation into the layer
        folded = nn.Linear(x.shape[1], n_classes)
        folded.weight.copy_(head.weight / std)
        folded.bias.copy_(head.bias - (head.weight * mean / std).sum(1))
    return folded


def fit_classifier(root: Path, name: str, models_root: Path, image_size: int = 224) -> tuple[Path, ModelCard]:
    data = stratified_split(root)
    prep = Preprocessing((image_size, image_size), IMAGENET_LITE_MEAN, IMAGENET_LITE_STD)
    started = time.perf_counter()
    features = PooledFeatures(load_pretrained()).eval()
    x = _features(features, [_view(p, root) for p in data.paths], prep)
    y = _view_labels(data.labels, _CHUNK)
    head = _fit_head(x, y, len(data.classes))
    model = DefectClassifier(features, head).eval()
    fit_seconds = time.perf_counter() - started
    metrics = _holdout_metrics(model, [_view(p, root) for p in data.test_paths], data, prep)
    with version_folder(models_root, name, digest_files(data.paths)) as new:
        model_dir, version = new.folder, new.version
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, image_size, image_size),),
            str(model_dir / ONNX_FILE),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        card = ModelCard(
            name=name,
            version=version,
            kind="classifier",
            architecture="efficientnet-lite0-linear-probe",
            inputs={"image": {"shape": [None, 3, image_size, image_size], "dtype": "float32"}},
            outputs=["logits"],
            preprocessing=prep,
            thresholds=Thresholds(0.0, 0.0),
            onnx_sha256=sha256_hex((model_dir / ONNX_FILE).read_bytes()),
            training={
                "data_digest": digest_files(data.paths),
                "source": str(root),
                "classes": data.classes,
                "n_train": len(data.paths),
                "n_holdout": len(data.test_paths),
                "fit_seconds": round(fit_seconds, 2),
                "split": "per class, sorted by name, every 4th image held out",
            },
            metrics=metrics,
        )
        card.save(model_dir)
    log.info("classifier %s %s: holdout accuracy %.3f", name, version, metrics["accuracy"])
    return new.final, card


def _view_labels(labels: list[int], chunk: int) -> torch.Tensor:
    """Labels in the order ``_features`` emits views: per chunk, all originals, then h-flips, then v-flips."""
    out: list[int] = []
    for start in range(0, len(labels), chunk):
        out.extend(labels[start : start + chunk] * 3)
    return torch.tensor(out)


def _holdout_metrics(
    model: DefectClassifier, images: list[np.ndarray], data: LabelledImages, prep: Preprocessing
) -> dict[str, Any]:
    with torch.no_grad():
        logits = torch.cat(
            [
                model(torch.from_numpy(to_model_input(images[i : i + 16], prep)))
                for i in range(0, len(images), 16)
            ]
        )
    predicted = logits.argmax(1).numpy()
    truth = np.array(data.test_labels)
    recall = {
        c: float((predicted[truth == i] == i).mean())
        for i, c in enumerate(data.classes)
        if (truth == i).any()
    }
    return {"accuracy": float((predicted == truth).mean()), "recall_by_class": recall, "n": int(truth.size)}
