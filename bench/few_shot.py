"""Image AUROC against the number of good training images (few-shot matters on new lines).

    python bench/few_shot.py bench/out/mvtec/casting 20 50 200

Each size fits on the first N images of the fit split (calibration split unchanged) and scores the
dataset's whole test split with ONNX Runtime.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from inspectors.training.fit_anomaly import fit_anomaly, request_from_mvtec
from inspectors.training.patchcore import PatchCoreSettings
from pipeline.datasets import open_mvtec
from pipeline.evaluate import evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("sizes", type=int, nargs="+")
    args = parser.parse_args()
    request = request_from_mvtec(args.data, "few-shot", PatchCoreSettings())
    dataset = open_mvtec(args.data)
    out = Path(tempfile.mkdtemp(prefix="qcflow-few-shot-"))
    print(f"{'images':>7}{'image AUROC':>13}{'fit s':>8}")
    for n in args.sizes:
        model_dir, card = fit_anomaly(replace(request, good_images=request.good_images[:n]), out)
        metrics = evaluate_model(model_dir, dataset)
        print(f"{n:>7}{metrics['image_auroc']:>13.4f}{card.training['fit_seconds']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
