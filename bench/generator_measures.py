"""The measurements behind ``bench/generator_quality.py`` (see there for what and why)."""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy.orm import Session

from generators.crops import crop_around, resize_square
from generators.diffusion import DefectInpaintingGenerator, Sampling
from generators.prescreen import prescreen
from inspectors.training.classifier import PooledFeatures
from inspectors.training.efficientnet_lite import IMAGENET_LITE_MEAN, IMAGENET_LITE_STD, load_pretrained
from pipeline.db.engine import make_engine, upgrade_to_head
from pipeline.db.models import UserRow
from pipeline.images import read_image, read_mask
from pipeline.review import (
    approve,
    approved_synthetic_images,
    load_synthetic_pixels,
    record_synthetic,
    reject,
)
from pipeline.storage import ImageStore
from pipeline.types import SyntheticImage, sha256_hex

log = logging.getLogger(__name__)

WINDOW = 128  # every real or generated defect window is compared at this size
SCRIPTED_REVIEWER = "bench-scripted-reviewer"  # benchmark stand-in for a person; never the product default
RARE_CLASS = "fray"


@dataclass(frozen=True, slots=True)
class Windows:
    """Defect windows (BGR, ``WINDOW`` px), their classes and their masks at the window's size."""

    images: list[np.ndarray] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)

    def add(self, image: np.ndarray, mask: np.ndarray, defect_class: str, min_side: int) -> None:
        """The window around ``mask`` (the same box for any image of the same size and mask)."""
        crop = crop_around(mask, min_side)
        self.images.append(resize_square(crop.cut(image), WINDOW))
        self.masks.append(resize_square(crop.cut(mask).astype(np.uint8), WINDOW, nearest=True) > 0)
        self.classes.append(defect_class)

    def masked_only(self) -> Windows:
        """The same windows with every pixel outside the mask black: only the defect's own pixels."""
        pairs = zip(self.images, self.masks, strict=True)
        images = [np.where(m[..., None], i, 0).astype(np.uint8) for i, m in pairs]
        return Windows(images, self.classes, self.masks)


@dataclass(frozen=True, slots=True)
class RealDefect:
    image: np.ndarray
    mask: np.ndarray
    defect_class: str


def real_defects(data: Path, split: dict[str, dict[str, list[str]]], part: str) -> Iterator[RealDefect]:
    """The real defect images (with a non-empty mask) of one half of the split."""
    for defect_class, parts in split.items():
        for stem in parts[part]:
            image = read_image(next((data / "test" / defect_class).glob(f"{stem}.*")))
            mask = read_mask(data / "ground_truth" / defect_class / f"{stem}_mask.png", image.shape[:2])
            if mask.any():
                yield RealDefect(image, mask, defect_class)


def real_windows(data: Path, split: dict[str, dict[str, list[str]]], part: str, min_side: int) -> Windows:
    windows = Windows()
    for defect in real_defects(data, split, part):
        windows.add(defect.image, defect.mask, defect.defect_class, min_side)
    return windows


def controlled_windows(
    generator: DefectInpaintingGenerator,
    defects: list[RealDefect],
    *,
    steps: int | None = None,
    sampling: Sampling | None = None,
) -> tuple[Windows, Windows, dict[str, Any]]:
    """Real windows and, for each, a defect of the same class generated with the real mask into the same
    real image (its defect pixels replaced, surroundings identical), cut at the same box.

    A real defect whose window holds none of its mask (a mask of parts far apart) is skipped: there would
    be nothing to replace, and the pair would be two identical windows.
    """
    size = generator.card.image_size
    real, fake = Windows(), Windows()
    seconds, skipped = 0.0, 0
    for seed, defect in enumerate(defects):
        if not crop_around(defect.mask, size).cut(defect.mask).any():
            skipped += 1
            continue
        started = time.perf_counter()
        output = generator(
            image=defect.image,
            mask=defect.mask,
            defect_class=defect.defect_class,
            seed=seed,
            num_inference_steps=steps,
            sampling=sampling,
        )
        seconds += time.perf_counter() - started
        real.add(defect.image, defect.mask, defect.defect_class, size)
        fake.add(output.image, defect.mask, defect.defect_class, size)
    count = len(fake.images)
    return real, fake, {"pairs": count, "skipped_no_mask_in_window": skipped, "seconds": seconds}


def generate_and_review(
    generator: DefectInpaintingGenerator, data: Path, per_class: int, work: Path
) -> tuple[Windows, Windows, Windows, dict[str, Any]]:
    """Generated windows, approved ones (through the review gate), the same windows of the bare base frames
    (what the C2ST would score with no defect at all), and speed/review counts."""
    good = sorted((data / "train" / "good").iterdir())
    engine = make_engine(f"sqlite:///{work / 'review.db'}")
    upgrade_to_head(engine)
    store = ImageStore(work / "store")
    generated, bare = Windows(), Windows()
    seconds, decisions = 0.0, {"approved": 0, "rejected": 0}
    with Session(engine) as session:
        session.add(UserRow(name=SCRIPTED_REVIEWER, role="reviewer", password_hash="-"))
        for defect_class in generator.card.classes:
            for seed in range(per_class):
                base_path = good[random.Random(seed).randrange(len(good))]
                base = read_image(base_path)
                mask = generator.draw_mask(defect_class, base.shape[:2], seed)
                started = time.perf_counter()
                output = generator(image=base, mask=mask, defect_class=defect_class, seed=seed)
                seconds += time.perf_counter() - started
                generated.add(output.image, mask, defect_class, generator.card.image_size)
                bare.add(base, mask, defect_class, generator.card.image_size)
                screen = prescreen(base, output.image, mask, generator.class_stats(defect_class))
                image_id = record_synthetic(
                    session,
                    store,
                    SyntheticImage(output.image, mask, defect_class, generator.name, generator.version, seed,
                                   {"prescreen": screen.as_dict()}, sha256_hex(base_path.read_bytes())),
                )  # fmt: skip
                decide = reject if screen.flags else approve
                decide(
                    session, image_id, SCRIPTED_REVIEWER, "scripted: " + ("; ".join(screen.flags) or "clean")
                )
                decisions["rejected" if screen.flags else "approved"] += 1
            log.info("generated %d %s images", per_class, defect_class)
        session.commit()
        approved = Windows()
        for record in approved_synthetic_images(session):
            pixels, mask = load_synthetic_pixels(store, record)
            approved.add(pixels, mask, record.defect_class, generator.card.image_size)
    engine.dispose()
    count = len(generated.images)
    speed = {"images": count, "seconds": seconds, "images_per_second": count / seconds}
    return generated, approved, bare, {"speed": speed, "scripted_review": decisions}


def write_samples(path: Path, generated: Windows, real: Windows, per_row: int = 8) -> None:
    """One row per class: generated windows, then real ones (a picture to judge by eye); for the
    controlled windows the two halves of a row are pairs: the same image and mask, generated and real."""
    rows = []
    for defect_class in sorted(set(generated.classes)):
        fake = [w for w, c in zip(generated.images, generated.classes, strict=True) if c == defect_class]
        true = [w for w, c in zip(real.images, real.classes, strict=True) if c == defect_class]
        tiles = (fake[:per_row] + true[:per_row] + [np.zeros_like(fake[0])] * (2 * per_row))[: 2 * per_row]
        rows.append(np.hstack(tiles))
    cv2.imwrite(str(path), np.vstack(rows))


@torch.no_grad()
def features(images: list[np.ndarray]) -> np.ndarray:
    """EfficientNet-Lite0 (the anomaly specialist's backbone) pooled 1280-d features at 224 px.

    The same pooled features the defect-type classifier's linear head is fitted on.
    """
    model = PooledFeatures(load_pretrained()).eval()
    mean = torch.tensor(IMAGENET_LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_LITE_STD).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), 32):
        batch = [cv2.resize(i, (224, 224))[..., ::-1] for i in images[start : start + 32]]
        x = torch.from_numpy(np.stack(batch).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        out.append(model((x - mean) / std).numpy())
    return np.concatenate(out)


def _classifier() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))


MIN_SAMPLES = 10  # below this per side a figure is noise: reported as NaN


def c2st_accuracy(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """Held-out accuracy (5-fold) of telling real from generated, on equal numbers of each."""
    n = min(len(real), len(fake))
    if n < MIN_SAMPLES:
        return float("nan")
    rng = np.random.default_rng(seed)
    x = np.concatenate([real[rng.permutation(len(real))[:n]], fake[rng.permutation(len(fake))[:n]]])
    y = np.array([0] * n + [1] * n)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(_classifier(), x, y, cv=folds).mean())


def fid(a: np.ndarray, b: np.ndarray) -> float:
    if min(len(a), len(b)) < MIN_SAMPLES:
        return float("nan")
    covmean = linalg.sqrtm(np.cov(a, rowvar=False) @ np.cov(b, rowvar=False)).real
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(np.cov(a, rowvar=False) + np.cov(b, rowvar=False) - 2 * covmean))


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 50, size: int = 64, seed: int = 0) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, averaged over random subsets (Bińkowski et al.)."""
    rng = np.random.default_rng(seed)
    size = min(size, len(a), len(b))
    if size < MIN_SAMPLES:
        return float("nan")
    dim, values = a.shape[1], []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / dim + 1) ** 3, ((y @ y.T) / dim + 1) ** 3, ((x @ y.T) / dim + 1) ** 3
        off = size * (size - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(values))


def rare_class_recall(
    train: tuple[np.ndarray, list[str]], test: tuple[np.ndarray, list[str]]
) -> dict[str, float]:
    model = _classifier().fit(train[0], train[1])
    predicted = model.predict(test[0])
    truth = np.array(test[1])
    rare = truth == RARE_CLASS
    return {
        "fray_recall": float((predicted[rare] == RARE_CLASS).mean()),
        "accuracy": float((predicted == truth).mean()),
    }


def realism(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """C2ST held-out accuracy, FID and KID of two sets of window features: the one code path for all."""
    return {"c2st_accuracy": c2st_accuracy(real, fake), "fid": fid(real, fake), "kid": kid(real, fake)}


def per_class_c2st(real: np.ndarray, fake: np.ndarray, classes: list[str]) -> dict[str, float]:
    labels = np.array(classes)
    return {c: c2st_accuracy(real[labels == c], fake[labels == c]) for c in sorted(set(classes))}


OLD = {"feather_paste": True}  # variants measured before the paste kept to the mask keep their meaning
# name -> (steps, sampling); None: the generator's default
SAMPLING_VARIANTS: dict[str, tuple[int | None, Sampling | None]] = {
    "default": (None, None),
    # the sampling before 2026-11-26
    "plain": (None, Sampling(resample_known=False, match_class=False, match_grain=False, **OLD)),
    "resample_known": (None, Sampling(match_class=False, **OLD)),
    "match_class": (None, Sampling(resample_known=False, **OLD)),
    "steps_50": (50, None),
    "no_grain": (None, Sampling(match_grain=False, **OLD)),  # the default before the grain of the surface
    "feathered": (None, Sampling(**OLD)),  # the default before the paste kept to the mask
    "class_statistics": (None, Sampling()),  # the CPU model's default, whatever the card says
    "no_match_class": (None, Sampling(match_class=False)),  # the model's own grey levels (larger models)
}


def measure_controlled(
    generator: DefectInpaintingGenerator, defects: list[RealDefect], variant: str, samples: Path | None = None
) -> dict[str, Any]:
    """The controlled C2ST (see ``controlled_windows``) for one sampling variant."""
    steps, sampling = SAMPLING_VARIANTS[variant]
    real, fake, run = controlled_windows(generator, defects, steps=steps, sampling=sampling)
    if samples is not None:
        write_samples(samples, fake, real)
    f_real, f_fake = features(real.images), features(fake.images)
    masked_real, masked_fake = features(real.masked_only().images), features(fake.masked_only().images)
    return {
        "sampling": {
            "steps": steps or generator.card.default_steps,
            **asdict(sampling or generator.default_sampling()),
        },
        **run,
        "images_per_second": run["pairs"] / run["seconds"],
        "windows": realism(f_real, f_fake),
        "masked_pixels_only": realism(masked_real, masked_fake),
        "windows_c2st_per_class": per_class_c2st(f_real, f_fake, real.classes),
    }


def measure_all(
    data: Path,
    split: dict[str, dict[str, list[str]]],
    model: Path,
    out: Path,
    *,
    per_class: int,
    variants: tuple[str, ...] = ("default",),
    controlled_only: bool = False,
) -> dict[str, Any]:
    generator = DefectInpaintingGenerator.load(model)
    size = generator.card.image_size
    held_out = list(real_defects(data, split, "held_out"))
    results: dict[str, Any] = {
        "generator": {"path": str(model), "version": generator.version, "training": generator.card.training},
        "defaults": {
            "steps": generator.card.default_steps,
            "guidance": generator.card.default_guidance,
            "window_px": size,
        },
    }
    controlled = {}
    for variant in variants:
        controlled[variant] = measure_controlled(
            generator, held_out, variant, out / f"samples_controlled_{variant}.png"
        )
        log.info("controlled %s: %s", variant, controlled[variant]["windows"])
    results["controlled"] = controlled
    if controlled_only:
        return {**results, "load_average": os.getloadavg()}
    fit_real, held_real = real_windows(data, split, "fit", size), real_windows(data, split, "held_out", size)
    with tempfile.TemporaryDirectory(dir=out) as work:
        generated, approved, bare, run = generate_and_review(generator, data, per_class, Path(work))
    write_samples(out / "samples.png", generated, held_real)
    f_fit, f_held = features(fit_real.images), features(held_real.images)
    f_gen, f_ok, f_bare = features(generated.images), features(approved.images), features(bare.images)
    ok_rare = f_ok[np.array(approved.classes) == RARE_CLASS]
    with_synthetic = (np.concatenate([f_fit, ok_rare]), fit_real.classes + [RARE_CLASS] * len(ok_rare))
    baseline = "baseline_real_fit_vs_held_out_real"  # what two real samples score: the floor to compare to
    held = (f_held, held_real.classes)
    return {
        **results,
        "counts": {
            "real_fit": len(fit_real.images),
            "real_held_out": len(held_real.images),
            "generated": len(generated.images),
            "approved": len(approved.images),
            "approved_fray": len(ok_rare),
        },
        **run,
        "good_frames": {  # generated on good frames with drawn masks: measures background and defect together
            "approved_vs_held_out_real": realism(f_held, f_ok),
            "all_generated_vs_held_out_real": realism(f_held, f_gen),
            "bare_base_windows_vs_held_out_real": realism(f_held, f_bare),
            baseline: realism(f_held, f_fit),
        },
        "usefulness": {
            "classifier": "logistic regression on EfficientNet-Lite0 pooled features (the design of "
            "inspectors/training/classifier.py, frozen backbone + linear head, refitted here on windows)",
            "real_only": rare_class_recall((f_fit, fit_real.classes), held),
            "real_plus_approved_fray": rare_class_recall(with_synthetic, held),
        },
        "load_average": os.getloadavg(),
    }
