"""Report figures as base64 PNG strings, ready to embed in a self-contained page.

matplotlib is used through ``Figure`` and the Agg canvas directly, never pyplot, so no
global backend state is touched and nothing tries to open a window.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from pipeline.decide import Thresholds
from pipeline.images import encode_png, jet_colours
from pipeline.reports.metrics import ClassRecall

THUMBNAIL_PX = 160
# Full red at this multiple of the fail threshold, as in the heat maps the inspection runner stores.
HEATMAP_FULL_SCALE = 1.25
HEATMAP_WEIGHT = 0.6  # opacity of the heat map where it is at full scale


@dataclass(frozen=True, slots=True)
class Curve:
    """One model's scores on the same items, for ROC/PR figures."""

    label: str
    scores: np.ndarray
    is_defect: np.ndarray


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(5, 4))
    ax = figure.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return figure, ax


def _has_both(curve: Curve) -> bool:
    return bool(curve.is_defect.any() and (~curve.is_defect).any())


def roc_plot(curves: Sequence[Curve]) -> str:
    figure, ax = _axes(
        "ROC", "false-positive rate (good parts flagged)", "true-positive rate (defects found)"
    )
    for c in filter(_has_both, curves):
        fpr, tpr, _ = roc_curve(c.is_defect, c.scores)
        ax.plot(fpr, tpr, label=c.label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.legend(loc="lower right")
    return _png(figure)


def pr_plot(curves: Sequence[Curve]) -> str:
    figure, ax = _axes("Precision-recall", "recall", "precision")
    for c in filter(_has_both, curves):
        precision, recall, _ = precision_recall_curve(c.is_defect, c.scores)
        ax.plot(recall, precision, label=c.label)
    ax.legend(loc="lower left")
    return _png(figure)


def score_histogram(scores: np.ndarray, is_defect: np.ndarray, thresholds: Thresholds, title: str) -> str:
    figure, ax = _axes(title, "anomaly score", "items")
    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=50).tolist() if finite.any() else 10
    for rows, label, colour in ((~is_defect, "good", "tab:green"), (is_defect, "defective", "tab:red")):
        ax.hist(scores[rows & finite], bins=bins, alpha=0.55, label=label, color=colour)
    ax.axvline(thresholds.review, color="tab:orange", linestyle="--", label="review")
    ax.axvline(thresholds.fail, color="black", linestyle="--", label="fail")
    ax.legend()
    return _png(figure)


def class_recall_bars(recalls: Sequence[ClassRecall], title: str) -> str:
    figure, ax = _axes(title, "defect class", "recall (caught: REVIEW or FAIL)")
    values = np.array([r.recall.value for r in recalls])
    below = values - np.array([r.recall.low for r in recalls])
    above = np.array([r.recall.high for r in recalls]) - values
    positions = np.arange(len(recalls))
    ax.bar(positions, values, yerr=[below, above], capsize=4, color="tab:blue")
    ax.set_xticks(positions, [f"{r.defect_class}\n(n={r.total})" for r in recalls])
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_ylim(0, 1.05)
    return _png(figure)


def miss_thumbnail(
    image_bgr: np.ndarray, small_map: np.ndarray, normal_level: float, fail_threshold: float
) -> str:
    """The image with its anomaly map blended in, ``THUMBNAIL_PX`` wide.

    The colour scale starts at ``normal_level`` (what good parts' maps typically show),
    because nearest-neighbour distances are never zero: scaled from 0, every pixel of a
    real model's map would be tinted and the defect would not stand out.
    """
    h = max(1, round(image_bgr.shape[0] * THUMBNAIL_PX / image_bgr.shape[1]))
    image = cv2.resize(image_bgr, (THUMBNAIL_PX, h), interpolation=cv2.INTER_AREA)
    top = max(fail_threshold * HEATMAP_FULL_SCALE, normal_level + 1e-12)
    level = np.clip(
        (cv2.resize(small_map, (THUMBNAIL_PX, h)) - normal_level) / (top - normal_level), 0.0, 1.0
    )
    heat = jet_colours((level * 255).astype(np.uint8))
    # Opacity grows with the level, so normal areas show the part itself rather than a blue wash.
    alpha = (HEATMAP_WEIGHT * level)[..., None]
    blended = (image * (1 - alpha) + heat * alpha).astype(np.uint8)
    return base64.b64encode(encode_png(blended)).decode("ascii")
