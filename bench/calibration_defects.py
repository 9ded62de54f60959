"""What labelled defects do to a fitted model's thresholds, measured on the test split.

    python bench/calibration_defects.py MODEL_DIR DATA DEFECTS [--count 600] [--review-rate 0.05 0.15 0.25]

Scores the model's held-out good calibration images (the same split ``qcflow fit`` uses) and
``--count`` defective images from ``DEFECTS`` (a folder that must not overlap ``DATA/test``), then,
for each review budget, calibrates with ``calibrate_thresholds`` as ``fit --calibration-defects``
would, and prints the false-reject, escape and review rates those thresholds give on ``DATA/test``.
No refit: the ONNX graph is the fitted model's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from inspectors.training.fit_anomaly import load_calibration_defects, split_calibration
from pipeline.datasets import open_mvtec
from pipeline.decide import calibrate_thresholds
from pipeline.images import read_image
from pipeline.metrics import image_metrics
from pipeline.specialists import anomaly_scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("data", type=Path, help="the dataset the model was fitted on (MVTec layout)")
    parser.add_argument("defects", type=Path, help="labelled defective images, apart from DATA/test")
    parser.add_argument("--count", type=int, default=600, help="defects to calibrate on (evenly spaced)")
    parser.add_argument("--review-rate", type=float, nargs="+", default=[0.05, 0.15, 0.25])
    parser.add_argument("--target-escape", type=float, default=0.01)
    args = parser.parse_args()
    dataset = open_mvtec(args.data)
    scorer = anomaly_scorer(args.model_dir)
    _, calib_paths = split_calibration(list(dataset.train_good))
    defects = load_calibration_defects(args.defects, dataset)
    step = max(1, len(defects.images) // args.count)
    good = scorer.score_images([read_image(p) for p in calib_paths])[1]
    bad = scorer.score_images(defects.images[::step])[1]
    test = scorer.score_images([read_image(i.path) for i in dataset.test])[1]
    is_defect = np.array([i.is_defect for i in dataset.test])
    print(f"{scorer.version}: {good.size} good and {bad.size} defective calibration images")
    header = f"{'budget':>7}{'rule':>30}{'escape calib':>14}"
    print(header + f"{'FRR test':>10}{'escape test':>13}{'review test':>13}")
    for budget in args.review_rate:
        thresholds = calibrate_thresholds(
            good, bad, target_review_rate=budget, target_escape=args.target_escape
        )
        m = image_metrics(test, is_defect, thresholds)
        calibration = thresholds.calibration
        assert calibration is not None
        print(
            f"{budget:>7.2f}{calibration.review_rule[:28]:>30}{calibration.escapes / bad.size:>14.2%}"
            f"{m['false_reject_rate']:>10.2%}{m['escape_rate']:>13.2%}{m['review_rate']:>13.2%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
