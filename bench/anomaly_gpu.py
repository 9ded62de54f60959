"""Anomaly fitting and the torch reference scorer on a torch device (a GPU): fit seconds, images/s.

    python -m bench.anomaly_gpu [--device cuda] [--parts 684] [--backbone lite1] [--bank-size 4096 16384]

Fits the PatchCore model on simulated good parts with features and coreset on
``--device`` (``fit anomaly --device``), then times the torch reference scorer
on that device at batch 1 and 8 (preprocessing included, on the CPU) over
simulated frames. The deployed scoring path is ONNX Runtime: on a GPU it needs
the ``[gpu]`` extra (onnxruntime-gpu); the providers this machine's ONNX
Runtime offers are printed so the figures say which ones were there.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch

from bench.timing import timed
from inspectors.preprocess import to_model_input
from inspectors.training.patchcore import PatchCoreScorer, PatchCoreSettings, fit_patchcore
from pipeline.simulate import SimulationSettings, render_part
from pipeline.torch_device import torch_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--parts", type=int, default=684, help="good parts to fit on (magnetic tile: 684)")
    parser.add_argument("--frames", type=int, default=256, help="frames to score")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels")
    parser.add_argument("--backbone", default="lite1")
    parser.add_argument("--bank-size", type=int, nargs="+", default=[4096, 16384])
    args = parser.parse_args()
    device = torch_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    providers = ort.get_available_providers()
    print(f"torch {torch.__version__} on {name}; ONNX Runtime {ort.__version__} {providers}")
    simulation = SimulationSettings(size=args.size, seed=5)
    good = [render_part(simulation, i, defect=None).image for i in range(args.parts)]
    frames = [render_part(simulation, args.parts + i).image for i in range(args.frames)]
    rows = []
    for bank_size in args.bank_size:
        settings = PatchCoreSettings(backbone=args.backbone, bank_size=bank_size, device=args.device)
        started = time.perf_counter()
        scorer = fit_patchcore(good, settings)
        fit_s = time.perf_counter() - started
        run = _on_device(scorer.to(device), device)
        for batch in (1, 8):
            rows.append({"bank": bank_size, "fit_s": fit_s, "batch": batch, **timed(run, frames, batch)})
            print(json.dumps(rows[-1]))
    print(f"{'bank':>7}{'fit s':>8}{'batch':>6}{'images/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for r in rows:
        print(
            f"{r['bank']:>7}{r['fit_s']:>8.1f}{r['batch']:>6}{r['images_per_s']:>10.1f}"
            f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
        )


def _on_device(scorer: PatchCoreScorer, device: torch.device) -> Callable[[list[np.ndarray]], object]:
    def run(images: list[np.ndarray]) -> object:
        with torch.no_grad():
            score = scorer(torch.from_numpy(to_model_input(images, scorer.preprocessing)).to(device))
        return [t.cpu() for t in score]  # the result back on the CPU, as a caller gets it

    return run


if __name__ == "__main__":
    main()
