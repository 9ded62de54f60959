"""Label OCR on simulated parts: how clean, smeared and missing print are read and labelled with a
line's OCR settings (default: the demo line's), and the print contrast of each kind.

    python -m bench.ocr_print [--parts 150] [--sizes 256 320 480] [--line config/lines/demo.yaml]

A smeared code that is read as a well-formed but wrong code and labelled ``text_ok`` is the failure
that matters most (a wrong lot code logged as verified); the benchmark counts those apart.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from inspectors.ocr import TEXT_OK, LabelOcrInspector
from pipeline.config import load_line_config
from pipeline.simulate import SimulationSettings, render_part

KINDS = ("clean", "smeared_print", "missing_print")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=150, help="parts of each kind and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 480], help="frame sizes, px")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--line", type=Path, default=Path("config/lines/demo.yaml"), help="line with OCR")
    args = parser.parse_args()
    ocr_settings = load_line_config(args.line).specialists.ocr
    if ocr_settings is None:
        raise SystemExit(f"{args.line}: the line has no ocr specialist")
    ocr = LabelOcrInspector(
        roi=ocr_settings.roi,
        pattern=ocr_settings.pattern,
        min_confidence=ocr_settings.min_confidence,
        min_print_contrast=ocr_settings.min_print_contrast,
    )
    print(
        f"{args.line}: pattern {ocr_settings.pattern!r}, min_confidence {ocr_settings.min_confidence}, "
        f"min_print_contrast {ocr_settings.min_print_contrast}; {args.parts} parts of each kind and size"
    )
    for size in args.sizes:
        simulation = SimulationSettings(size=size, seed=args.seed)
        for kind in KINDS:
            labels: Counter[str] = Counter()
            exact = wrong_ok = 0
            contrasts, seconds = [], []
            for index in range(args.parts):
                part = render_part(simulation, index, defect=None if kind == "clean" else kind)
                started = time.perf_counter()
                reading = ocr.read(part.image)
                seconds.append(time.perf_counter() - started)
                label = ocr.label(reading)
                labels[label] += 1
                exact += reading.text == part.lot_code
                wrong_ok += label == TEXT_OK and reading.text != part.lot_code
                if reading.print_contrast is not None:
                    contrasts.append(reading.print_contrast)
            spread = "no text found"
            if contrasts:
                low, high, median = min(contrasts), max(contrasts), float(np.median(contrasts))
                spread = f"print contrast {low:.3f}-{high:.3f} (median {median:.3f})"
            print(
                f"{size} px {kind:13s} read exactly {exact:3d}/{args.parts}  wrong code passed {wrong_ok}  "
                f"{spread}  {1000 * float(np.median(seconds)):.0f} ms a read  "
                + ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
            )


if __name__ == "__main__":
    main()
