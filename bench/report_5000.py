"""Time building an accuracy report on a 5,000-item procedural suite.

    python bench/report_5000.py [--items 5000] [--model-dir DIR] [--out bench/out/report_5000]

Parts come from the simulated line (``pipeline/simulate.py``: cast discs with drawn
cracks, scratches, pits, print faults and chips, each with its mask) and go through the
same store and suite code as ``qcflow suite create``. Without ``--model-dir`` the scorer
is a cheap, untrained one (distance from the median good part), so the time measured is
the report machinery itself — reading and decoding 5,000 images, metrics, intervals,
pixel AUROC/PRO, plots, HTML and the database — rather than the network; with
``--model-dir`` an exported ONNX model scores the suite and its time is reported apart.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.decide import Thresholds, calibrate_thresholds
from pipeline.images import encode_png
from pipeline.inspection import open_workspace
from pipeline.reports.build import ModelUnderTest, build_report
from pipeline.reports.suites import DEFECT, GOOD, SuiteItem, create_suite
from pipeline.simulate import SimulatedLine, SimulationSettings
from pipeline.specialists import anomaly_scorer
from pipeline.storage import ImageStore
from pipeline.types import Finding, Frame

# No jitter or lighting drift: the untrained reference scorer would otherwise see only those.
SETTINGS = SimulationSettings(size=128, defect_rate=0.3, seed=11, jitter_px=0, lighting_drift=0.0)
REFERENCE_PARTS = 64  # good parts (outside the suite's index range) that define "normal"


class MedianDifferenceScorer:
    """Anomaly map = blurred absolute difference from the median good part; score = its max."""

    name = "anomaly"
    version = "median-difference-1"
    providers: tuple[str, ...] = ("numpy",)

    def __init__(self, reference: np.ndarray, thresholds: Thresholds | None = None) -> None:
        self.reference = reference
        self.thresholds = thresholds or Thresholds(0.0, 0.0)

    def score_images(self, images_bgr: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        maps = np.stack(
            [
                cv2.GaussianBlur(
                    np.abs(cv2.cvtColor(i, cv2.COLOR_BGR2GRAY).astype(np.float32) - self.reference),
                    (0, 0),
                    2.0,
                )
                for i in images_bgr
            ]
        )
        return maps, maps.reshape(len(maps), -1).max(axis=1)

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        raise NotImplementedError("benchmark scorer: images only")


def reference_scorer(line: SimulatedLine, first_index: int) -> MedianDifferenceScorer:
    good = [p.image for p in line.parts(first_index, 4 * REFERENCE_PARTS) if p.defect is None][
        :REFERENCE_PARTS
    ]
    grey = np.stack([cv2.cvtColor(g, cv2.COLOR_BGR2GRAY).astype(np.float32) for g in good])
    half = len(grey) // 2
    scorer = MedianDifferenceScorer(np.median(grey[:half], axis=0))
    # Calibrated like a real model: quantiles of held-out good parts' scores.
    scorer.thresholds = calibrate_thresholds(scorer.score_images(good[half:])[1])
    return scorer


def procedural_items(store: ImageStore, line: SimulatedLine, count: int) -> list[SuiteItem]:
    items = []
    for part in line.parts(0, count):
        image = store.put(encode_png(part.image))
        if part.defect is None:
            items.append(SuiteItem(image, GOOD))
        else:
            items.append(SuiteItem(image, DEFECT, part.defect, store.put(encode_png(part.mask))))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--model-dir", type=Path, help="an exported model folder (model.onnx + model.json)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/report_5000"))
    args = parser.parse_args()
    line = SimulatedLine(SETTINGS)
    with tempfile.TemporaryDirectory(prefix="qcflow-bench-") as tmp:
        ws = open_workspace(Path(tmp) / "data", Path(tmp) / "config")
        t0 = time.perf_counter()
        items = procedural_items(ws.store, line, args.items)
        with ws.session() as session, session.begin():
            create_suite(session, "procedural", items)
        setup = time.perf_counter() - t0
        if args.model_dir:
            model = ModelUnderTest("model", anomaly_scorer(args.model_dir))
        else:
            model = ModelUnderTest("median-difference", reference_scorer(line, args.items))
        t0 = time.perf_counter()
        built = build_report(ws, "procedural", [model], args.out, created_by="bench")
        total = time.perf_counter() - t0
        ws.engine.dispose()
    summary = {
        "items": args.items,
        "suite_setup_seconds": round(setup, 1),
        "report_seconds": round(total, 1),
        "scoring_seconds": round(built.scoring_seconds, 1),
        "analysis_seconds": round(built.analysis_seconds, 1),
        "scorer": model.scorer.version,
        "headline": built.results[0].headline.flat(),
        "html_bytes": built.html_path.stat().st_size,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
