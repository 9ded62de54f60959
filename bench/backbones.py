"""Anomaly backbones, bank sizes and few-shot curves side by side: AUROC, ONNX images/s at batch 1, fit time.

    python bench/backbones.py bench/out/mvtec/casting 200
    python bench/backbones.py bench/out/mvtec/casting 20 50 200 --backbones lite1   # few-shot curve
    python bench/backbones.py DATA 50 --backbones lite0 lite2 hf:models/dinov2-small --out bench/out/bb.json
    python bench/backbones.py bench/out/mvtec/magnetic-tile 684 --backbones lite1 --bank-size 4096 16384

Each backbone is fitted, for each bank size, on the first N good images of the fit split for each N (the
calibration split is the same for all), exported, and its ONNX graph scores the
dataset's whole test split (image and pixel AUROC). Speed is ONNX Runtime on one
image at a time, preprocessing included, over at most ``--speed-images`` test images
after a warm-up; the input size is each backbone's own unless ``--image-size``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import ONNX_FILE
from inspectors.training.fit_anomaly import fit_anomaly, request_from_mvtec
from inspectors.training.patchcore import PatchCoreSettings
from pipeline.datasets import open_mvtec
from pipeline.evaluate import evaluate_model
from pipeline.images import read_image


def images_per_second(model_dir: Path, paths: list[Path]) -> float:
    inspector = AnomalyInspector(model_dir, batch_size=1)
    images = [read_image(p) for p in paths]
    inspector.score_images(images[:2])  # warm-up
    started = time.perf_counter()
    for image in images:
        inspector.score_images([image])
    return len(images) / (time.perf_counter() - started)


def measure(
    request: Any, backbone: str, bank_size: int, dataset: Any, out: Path, speed_images: int
) -> dict[str, Any]:
    request = replace(request, name=backbone.replace(":", "-").replace("/", "_"))
    request = replace(request, settings=replace(request.settings, backbone=backbone, bank_size=bank_size))
    model_dir, card = fit_anomaly(request, out)
    metrics = evaluate_model(model_dir, dataset)
    return {
        "backbone": backbone,
        "bank_size": card.training["bank_size"],
        "image_size": card.inputs["image"]["shape"][-1],
        "feature_dim": card.training["feature_dim"],
        "image_auroc": metrics["image_auroc"],
        "pixel_auroc": metrics["pixel_auroc"],
        "images_per_s_batch1": images_per_second(model_dir, [i.path for i in dataset.test[:speed_images]]),
        "fit_seconds": card.training["fit_seconds"],
        "onnx_mb": (model_dir / ONNX_FILE).stat().st_size / 2**20,
        "n_fit_images": card.training["n_fit_images"],
        "n_test_images": len(dataset.test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset in MVTec AD layout")
    parser.add_argument("fit_images", type=int, nargs="+", help="good images to fit on (at most), each")
    parser.add_argument("--backbones", nargs="+", default=["lite0", "lite1", "lite2"])
    parser.add_argument("--bank-size", type=int, nargs="+", default=[PatchCoreSettings().bank_size])
    parser.add_argument("--image-size", type=int, default=None, help="default: each backbone's own")
    parser.add_argument("--speed-images", type=int, default=50)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    settings = PatchCoreSettings(image_size=args.image_size)
    request = request_from_mvtec(args.data, "bench-backbones", settings)
    dataset = open_mvtec(args.data)
    out = Path(tempfile.mkdtemp(prefix="qcflow-backbones-"))
    print(f"{args.data}: {len(request.good_images)} good images to fit on, {len(dataset.test)} test images")
    header = f"{'backbone':<24}{'bank':>7}{'fit n':>6}{'size':>5}{'dim':>6}"
    print(header + f"{'image AUROC':>13}{'pixel AUROC':>13}{'img/s b1':>10}{'fit s':>8}{'ONNX MB':>9}")
    rows = []
    for backbone in args.backbones:
        for bank_size in args.bank_size:
            for n in args.fit_images:
                subset = replace(request, good_images=request.good_images[:n])
                row = measure(subset, backbone, bank_size, dataset, out, args.speed_images)
                rows.append(row)
                pixel = "-" if row["pixel_auroc"] is None else f"{row['pixel_auroc']:.4f}"
                print(
                    f"{backbone:<24}{row['bank_size']:>7}{row['n_fit_images']:>6}{row['image_size']:>5}"
                    f"{row['feature_dim']:>6}{row['image_auroc']:>13.4f}{pixel:>13}"
                    f"{row['images_per_s_batch1']:>10.1f}{row['fit_seconds']:>8.1f}{row['onnx_mb']:>9.1f}",
                    flush=True,
                )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
