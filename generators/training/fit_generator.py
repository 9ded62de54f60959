"""Fit the defect-inpainting generator on the real defective images (with masks) of an MVTec dataset.

Training pairs are square windows around each real defect (see
``generators.crops``), several per image with jittered placement and flips;
the loss is the usual noise-prediction MSE, weighted towards the mask because
the pixels outside it are given to the model anyway.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers.training_utils import EMAModel

from generators.crops import crop_around, model_mask, resize_square
from generators.diffusion import (
    CARD_FILE,
    UNCONDITIONAL,
    DefectInpaintingGenerator,
    GeneratorCard,
    UNetSettings,
    model_input,
    read_card,
    to_tensor,
    training_scheduler,
)
from generators.masks import MaskSampler, MaskTemplate, template_from_mask
from pipeline.datasets import digest_files, open_mvtec
from pipeline.errors import DatasetError
from pipeline.images import read_image
from pipeline.torch_device import torch_device
from pipeline.versions import version_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GeneratorFitSettings:
    unet: UNetSettings = field(default_factory=UNetSettings)
    train_steps: int = 1500
    max_seconds: float | None = None  # stop early when the time budget is spent
    batch_size: int = 8
    learning_rate: float = 5e-4
    crops_per_image: int = 8
    class_dropout: float = 0.1  # share of batches' labels replaced by "any defect", for guidance
    outside_mask_weight: float = 0.2
    ema_decay: float | None = None  # keep an exponential moving average of the weights and save that
    match_class: bool = True  # the card's default for ``Sampling.match_class`` (see docs/generators.md)
    device: str = "cpu"  # torch device to train on ("cuda" on a GPU machine); the weights are saved for CPU
    seed: int = 0


@dataclass(frozen=True, slots=True)
class DefectExample:
    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    defect_class: str
    where: str


def load_defect_examples(
    root: Path, classes: list[str] | None = None
) -> tuple[list[DefectExample], list[Path]]:
    """Every defective test image with a mask (optionally only some classes), and the files read."""
    dataset = open_mvtec(root, need_test=False)
    items = [i for i in dataset.test if i.is_defect and (classes is None or i.defect_type in classes)]
    with_masks = [i for i in items if i.mask_path is not None]
    found = {i.defect_type for i in with_masks if i.defect_type is not None}
    missing = sorted(set(classes or []) - found)
    if missing or not with_masks:
        raise DatasetError(
            f"{root}: no real defect images with masks for classes {missing or classes or 'any'} "
            f"(expected test/<class>/*.png and ground_truth/<class>/<stem>_mask.png); found {sorted(found)}"
        )
    examples = []
    for item in with_masks:
        assert item.mask_path is not None and item.defect_type is not None
        image = read_image(item.path)
        mask = cv2.imread(str(item.mask_path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DatasetError(f"{item.mask_path}: not a decodable mask")
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                f"{item.mask_path}: mask is {mask.shape[1]}×{mask.shape[0]} but its image {item.path} "
                f"is {image.shape[1]}×{image.shape[0]}"
            )
        if not (mask > 127).any():
            log.warning("%s: empty mask, image skipped", item.mask_path)
            continue
        examples.append(DefectExample(image, mask > 127, item.defect_type, str(item.path)))
    files = [i.path for i in with_masks] + [i.mask_path for i in with_masks if i.mask_path]
    return examples, files


def training_crops(
    examples: list[DefectExample], classes: list[str], size: int, per_image: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images N×3×S×S in [-1, 1], masks N×1×S×S and class indices (1-based) of the training windows."""
    images, masks, labels = [], [], []
    for example in examples:
        for _ in range(per_image):
            crop = crop_around(example.mask, size, rng)
            images.append(to_tensor(resize_square(crop.cut(example.image), size)))
            masks.append(torch.from_numpy(model_mask(crop.cut(example.mask), size))[None])
            labels.append(classes.index(example.defect_class) + 1)
    return torch.stack(images), torch.stack(masks), torch.tensor(labels)


def mask_sampler(examples: list[DefectExample]) -> MaskSampler:
    """Mask shapes, sizes and places per class, from the real masks."""
    templates: dict[str, list[MaskTemplate]] = {}
    for e in examples:
        templates.setdefault(e.defect_class, []).append(template_from_mask(e.mask, e.where))
    return MaskSampler(templates)


RING_PX = 3  # width of the ring just outside a mask whose grey level a defect's offset is measured from


def class_pixel_stats(examples: list[DefectExample]) -> dict[str, dict[str, float]]:
    """Per class: mean and spread (over images) of the grey level and contrast inside real masks, and of
    the offset of that grey level from the ring of surface just outside the mask (dark defects < 0)."""
    per_class: dict[str, list[tuple[float, float, float]]] = {}
    kernel = np.ones((2 * RING_PX + 1,) * 2, np.uint8)
    for e in examples:
        grey = cv2.cvtColor(e.image, cv2.COLOR_BGR2GRAY).astype(np.float64)
        ring = (cv2.dilate(e.mask.astype(np.uint8), kernel) > 0) & ~e.mask
        inside = grey[e.mask]
        offset = inside.mean() - (grey[ring].mean() if ring.any() else inside.mean())
        per_class.setdefault(e.defect_class, []).append((inside.mean(), inside.std(), offset))
    stats = {}
    for defect_class, values in per_class.items():
        array = np.array(values)
        stats[defect_class] = {
            "mean": float(array[:, 0].mean()),
            "mean_spread": float(array[:, 0].std() + 1.0),
            "contrast": float(array[:, 1].mean()),
            "contrast_spread": float(array[:, 1].std() + 1.0),
            "offset": float(array[:, 2].mean()),
            "offset_spread": float(array[:, 2].std()),
        }
    return stats


def refresh_class_stats(folder: Path) -> dict[str, dict[str, float]]:
    """Recompute a saved generator's per-class pixel statistics from the data it was fitted on (refused
    unless that data still has the digest on the card); the weights are not touched."""
    card = read_card(folder)
    data = Path(card.training["data"])
    examples, files = load_defect_examples(data)
    if digest_files(files) != card.training["data_digest"]:
        raise DatasetError(f"{data}: differs from the data {folder} was fitted on (digest on its card)")
    stats = class_pixel_stats(examples)
    path = folder / CARD_FILE
    raw = json.loads(path.read_text())
    raw["class_stats"] = stats
    path.write_text(json.dumps(raw, indent=2))
    return stats


def _train(
    unet: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    settings: GeneratorFitSettings,
    device: torch.device,
) -> dict[str, float]:
    images, masks, labels = (t.to(device) for t in data)
    unet.to(device)
    scheduler = training_scheduler()
    timesteps = scheduler.config["num_train_timesteps"]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=settings.learning_rate)
    ema = None if settings.ema_decay is None else EMAModel(unet.parameters(), decay=settings.ema_decay)
    # every random draw comes from one CPU generator: the same draws whatever the device
    noise_source = torch.Generator().manual_seed(settings.seed)
    unet.train()
    started, losses, step = time.monotonic(), [], 0
    while step < settings.train_steps:
        if settings.max_seconds is not None and time.monotonic() - started > settings.max_seconds:
            break
        idx = torch.randint(len(images), (settings.batch_size,), generator=noise_source).to(device)
        x0, mask, label = images[idx], masks[idx], labels[idx].clone()
        if torch.rand(1, generator=noise_source).item() < 0.5:
            x0, mask = x0.flip(3), mask.flip(3)
        dropped = torch.rand(len(label), generator=noise_source) < settings.class_dropout
        label[dropped.to(device)] = UNCONDITIONAL
        noise = torch.randn(x0.shape, generator=noise_source).to(device)
        t = torch.randint(timesteps, (len(x0),), generator=noise_source).to(device)
        noisy = scheduler.add_noise(x0, noise, t)  # type: ignore[arg-type]  # int64 timesteps are fine
        predicted = unet(model_input(noisy, x0, mask), t, class_labels=label).sample
        weight = mask + settings.outside_mask_weight * (1.0 - mask)
        loss = (weight * (predicted - noise) ** 2).mean() / weight.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.step(unet.parameters())
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            log.info("generator step %d loss %.4f", step, np.mean(losses[-100:]))
    if ema is not None:
        ema.copy_to(unet.parameters())
    unet.to("cpu").eval()
    return {
        "train_steps": step,
        "fit_seconds": time.monotonic() - started,
        "final_loss": float(np.mean(losses[-50:])) if losses else float("nan"),
    }


def fit_generator(
    data: Path,
    name: str,
    models_root: Path,
    settings: GeneratorFitSettings | None = None,
    *,
    classes: list[str] | None = None,
) -> Path:
    """Fit on ``data`` (MVTec layout, with masks); saved to ``models_root/name/version``, returned."""
    settings = settings or GeneratorFitSettings()
    device = torch_device(settings.device)  # an unusable device is refused before any work
    examples, files = load_defect_examples(data, classes)
    class_names = sorted({e.defect_class for e in examples})
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    size = settings.unet.image_size
    crops = training_crops(examples, class_names, size, settings.crops_per_image, rng)
    unet = settings.unet.build(len(class_names))
    training = _train(unet, crops, settings, device)
    digest = digest_files(files)
    with version_folder(models_root, name, digest) as new:  # complete or absent, even after a crash
        counts = {c: sum(e.defect_class == c for e in examples) for c in class_names}
        card = GeneratorCard(
            name=name,
            version=new.version,
            classes=tuple(class_names),
            image_size=size,
            default_match_class=settings.match_class,
            training={
                **training,
                "data": str(data),
                "data_digest": digest,
                "images_per_class": counts,
                "n_crops": len(crops[0]),
                "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__ if k != "unet"},
                "unet": {
                    "block_out_channels": list(settings.unet.block_out_channels),
                    "layers_per_block": settings.unet.layers_per_block,
                    "image_size": size,
                },
            },
            class_stats=class_pixel_stats(examples),
        )
        generator = DefectInpaintingGenerator(unet, training_scheduler(), mask_sampler(examples), card)
        generator.save(new.folder)
    log.info("generator %s %s saved to %s (%s)", name, new.version, new.final, training)
    return new.final
