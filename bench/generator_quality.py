"""Generator quality on magnetic tile: realism (C2ST, FID/KID), usefulness (Fray recall), speed.

    python -m bench.generator_quality --data bench/out/mvtec/magnetic-tile --out bench/out/generator \
        [--fit-seconds 2100] [--model DIR] [--per-class 24] [--variants default,plain] [--controlled-only]

1. Split the real defect images of every class in half (seeded): the generator
   and the defect-type classifier learn from the first half only; the second
   half is the held-out real side of every measurement.
2. Fit the generator on the first half (or reuse ``--model``).
3. Generate ``--per-class`` images per class on real good training frames,
   pre-screen them, record them pending in a scratch database, and let a
   SCRIPTED REVIEWER (a benchmark stand-in, never the product default) approve
   those whose pre-screen passes; only ``approved_synthetic_images`` feeds the
   measurements below.
4. Realism: C2ST (logistic regression on EfficientNet-Lite0 pooled features,
   held-out accuracy; 0.5 = indistinguishable) and FID/KID on the same
   features, twice:
   - controlled (the defect alone): for each held-out real defect image, a
     defect of the same class inpainted with the real mask into the same
     image; real vs generated windows at the same boxes, and the same with
     every pixel outside the mask blacked out; once per ``--variants``
     sampling variant;
   - good frames (background and defect together): held-out real defect
     windows vs approved generated windows, and vs the bare good frames'
     windows at the same places (what the background alone scores).
5. Usefulness: a defect-type classifier (logistic regression on the same
   pooled features: the design of ``inspectors/training/classifier.py``, refitted
   here on defect windows) trained on real windows with and without approved
   synthetic Fray windows; Fray recall on the held-out real windows.
6. Speed: generated images/s at the default size, steps and guidance.

Writes ``OUT/generator_quality.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import torch

from bench.generator_measures import SAMPLING_VARIANTS, measure_all
from generators.training.fit_generator import GeneratorFitSettings, fit_generator

log = logging.getLogger("generator_quality")


def split_dataset(data: Path, out: Path, seed: int = 0) -> dict[str, dict[str, list[str]]]:
    """``out/fit``: MVTec layout with the first half of each class; returns the split by stem."""
    rng = random.Random(seed)
    fit_root = out / "fit"
    split: dict[str, dict[str, list[str]]] = {}
    for class_dir in sorted(p for p in (data / "test").iterdir() if p.is_dir() and p.name != "good"):
        stems = sorted(p.stem for p in class_dir.iterdir())
        rng.shuffle(stems)
        half = len(stems) // 2
        split[class_dir.name] = {"fit": sorted(stems[:half]), "held_out": sorted(stems[half:])}
        for stem in split[class_dir.name]["fit"]:
            image = next(class_dir.glob(f"{stem}.*"))
            _link(image, fit_root / "test" / class_dir.name / image.name)
            mask = data / "ground_truth" / class_dir.name / f"{stem}_mask.png"
            _link(mask, fit_root / "ground_truth" / class_dir.name / mask.name)
    _link(data / "train" / "good", fit_root / "train" / "good")
    return split


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.is_symlink():
        dst.symlink_to(src.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("bench/out/mvtec/magnetic-tile"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/generator"))
    parser.add_argument("--fit-seconds", type=float, default=2100.0)
    parser.add_argument("--model", type=Path, help="a fitted generator folder to reuse")
    parser.add_argument("--per-class", type=int, default=24, help="generated images per class")
    parser.add_argument("--fit-only", action="store_true")
    parser.add_argument(
        "--variants",
        default="default",
        help=f"comma-separated sampling variants for the controlled C2ST, of {sorted(SAMPLING_VARIANTS)}",
    )
    parser.add_argument(
        "--controlled-only", action="store_true", help="only the controlled C2ST (to compare variants)"
    )
    parser.add_argument("--json", default="generator_quality.json", help="result file name under --out")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared CPU)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    split = split_dataset(args.data, args.out)
    (args.out / "split.json").write_text(json.dumps(split, indent=1))
    model = args.model
    if model is None:
        settings = GeneratorFitSettings(train_steps=1_000_000, max_seconds=args.fit_seconds)
        model = fit_generator(args.out / "fit", "magnetic-tile-defects", args.out / "models", settings)
    if args.fit_only:
        print(model)
        return
    started = time.monotonic()
    variants = tuple(args.variants.split(","))
    unknown = sorted(set(variants) - set(SAMPLING_VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(SAMPLING_VARIANTS)}")
    results = measure_all(
        args.data,
        split,
        model,
        args.out,
        per_class=args.per_class,
        variants=variants,
        controlled_only=args.controlled_only,
    )
    results["bench_seconds"] = time.monotonic() - started
    (args.out / args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
