"""Build an accuracy report: score a suite with one or two models, measure, plot, store.

The suite's synthetic items are re-checked against the review gate at report time,
because an approval can be withdrawn after the suite was built. Headline figures are
on real items only; synthetic defects (with the real good items) are reported apart,
so generated images can never flatter the numbers a release decision rests on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.decide import Thresholds
from pipeline.errors import DatasetError
from pipeline.images import decode_image
from pipeline.inspection import Workspace
from pipeline.reports import plots
from pipeline.reports.gate import Bound, GateResult, check_gate
from pipeline.reports.history import record_report
from pipeline.reports.html import render_report
from pipeline.reports.metrics import GroupMetrics, decisions, group_metrics
from pipeline.reports.scoring import ScoredSuite, load_masks, score_suite
from pipeline.reports.stats import Difference, delong_test, finite_or_none, paired_bootstrap_rate_difference
from pipeline.reports.suites import Suite, load_suite, require_approved
from pipeline.specialists import AnomalyScorer
from pipeline.storage import ImageStore
from pipeline.types import Decision

WORST_SHOWN = 6
REAL, SYNTHETIC = "real", "synthetic"


@dataclass(frozen=True, slots=True)
class ModelUnderTest:
    name: str
    scorer: AnomalyScorer


@dataclass(frozen=True, slots=True)
class ModelResult:
    scored: ScoredSuite
    groups: dict[str, GroupMetrics]  # REAL, and SYNTHETIC when the suite has synthetic items

    @property
    def headline(self) -> GroupMetrics:
        return self.groups[REAL]


@dataclass(frozen=True, slots=True)
class BuiltReport:
    json_path: Path
    html_path: Path
    results: tuple[ModelResult, ...]
    gate: GateResult | None
    report_ids: tuple[int, ...]
    scoring_seconds: float
    analysis_seconds: float


@dataclass(frozen=True, slots=True)
class _Truth:
    """Suite labels as arrays, in item order."""

    is_defect: np.ndarray
    is_synthetic: np.ndarray
    defect_class: np.ndarray

    @classmethod
    def of(cls, suite: Suite) -> _Truth:
        return cls(
            np.array([i.is_defect for i in suite.items], bool),
            np.array([i.is_synthetic for i in suite.items], bool),
            np.array([i.defect_class or "" for i in suite.items], object),
        )

    def groups(self) -> dict[str, np.ndarray]:
        """Row selections: real items; real good items with synthetic defects."""
        selected = {REAL: ~self.is_synthetic}
        if self.is_synthetic.any():
            selected[SYNTHETIC] = self.is_synthetic | ~self.is_defect
        return selected


def build_report(
    ws: Workspace,
    suite_name: str,
    models: Sequence[ModelUnderTest],
    out_dir: Path,
    *,
    created_by: str,
    bounds: Sequence[Bound] = (),
) -> BuiltReport:
    """Score, measure and write ``report.json`` + ``report.html``; one report row per model."""
    if not 1 <= len(models) <= 2:
        raise ValueError(f"a report covers one model, or two side by side; got {len(models)}")
    if len({m.name for m in models}) < len(models):
        raise ValueError(f"--compare needs a second, different model; got {[m.name for m in models]}")
    with ws.session() as session:
        suite = load_suite(session, suite_name)
        require_approved(session, suite.items, f"report on suite {suite_name!r}")
    if not suite.items:
        raise DatasetError(f"suite {suite_name!r} has no items")
    store, truth = ws.store, _Truth.of(suite)
    started = time.perf_counter()
    scored = [score_suite(store, suite.items, m.scorer, m.name) for m in models]
    scoring_seconds = time.perf_counter() - started
    masks = load_masks(store, suite.items)
    results = tuple(_measure(s, truth, masks) for s in scored)
    gate = check_gate(results[0].headline.flat(), bounds) if bounds else None
    comparison = _compare(results, truth) if len(results) == 2 else None
    document = _document(suite, results, truth, comparison, gate, created_by)
    figures = _figures(results, truth)
    worst = _worst_items(store, suite, results[0], truth)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    analysis_seconds = time.perf_counter() - started - scoring_seconds
    document["timing"] = {"scoring_seconds": scoring_seconds, "analysis_seconds": analysis_seconds}
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False))  # strict JSON: NaN is null
    html_path.write_text(render_report(document, figures, worst))
    with ws.session() as session, session.begin():
        ids = tuple(
            record_report(
                session,
                suite_id=suite.id,
                suite_digest=suite.digest,
                model_name=r.scored.model_name,
                model_version=r.scored.model_version,
                # The gate judges the first model only; a --compare model's row says nothing about it.
                metrics={**r.headline.as_json(), "gate_passed": gate.passed if gate and k == 0 else None},
                created_by=created_by,
                path=str(json_path),
            )
            for k, r in enumerate(results)
        )
    return BuiltReport(json_path, html_path, results, gate, ids, scoring_seconds, analysis_seconds)


def _measure(scored: ScoredSuite, truth: _Truth, masks: np.ndarray | None) -> ModelResult:
    groups = {
        name: group_metrics(
            scored.scores[rows],
            truth.is_defect[rows],
            truth.defect_class[rows],
            scored.thresholds,
            scored.maps[rows],
            None if masks is None else masks[rows],
        )
        for name, rows in truth.groups().items()
    }
    return ModelResult(scored, groups)


def _compare(results: Sequence[ModelResult], truth: _Truth) -> dict[str, Difference]:
    """First model minus second, on real items: DeLong for AUROC, paired bootstrap for the rates."""
    a, b = (r.scored for r in results)
    real = ~truth.is_synthetic
    defect, good = real & truth.is_defect, real & ~truth.is_defect
    da, db = decisions(a.scores, a.thresholds), decisions(b.scores, b.thresholds)
    return {
        "image_auroc": delong_test(a.scores[real], b.scores[real], truth.is_defect[real]),
        "escape_rate": paired_bootstrap_rate_difference(
            da[defect] == Decision.PASS.value, db[defect] == Decision.PASS.value
        ),
        "false_reject_rate": paired_bootstrap_rate_difference(
            da[good] == Decision.FAIL.value, db[good] == Decision.FAIL.value
        ),
    }


def _document(
    suite: Suite,
    results: Sequence[ModelResult],
    truth: _Truth,
    comparison: dict[str, Difference] | None,
    gate: GateResult | None,
    created_by: str,
) -> dict[str, Any]:
    """Everything measured, plus every item with its scores, so each figure can be recomputed."""
    return {
        "suite": {
            "name": suite.name,
            "digest": suite.digest,
            "n_items": len(suite.items),
            "n_synthetic": int(truth.is_synthetic.sum()),
        },
        "created_by": created_by,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": [
            {
                "name": r.scored.model_name,
                "version": r.scored.model_version,
                "thresholds": _thresholds(r.scored.thresholds),
                "latency": asdict(r.scored.latency),
                "groups": {name: g.as_json() for name, g in r.groups.items()},
            }
            for r in results
        ],
        "comparison": None if comparison is None else {k: d.as_json() for k, d in comparison.items()},
        "gate": None
        if gate is None
        else {
            "passed": gate.passed,
            "checks": [
                {"bound": str(c.bound), "measured": c.measured, "passed": c.passed} for c in gate.checks
            ],
        },
        "items": [
            {
                **asdict(item),
                "scores": {r.scored.model_name: finite_or_none(float(r.scored.scores[k])) for r in results},
            }
            for k, item in enumerate(suite.items)
        ],
    }


def _thresholds(thresholds: Thresholds) -> dict[str, Any]:
    """The thresholds and, when the model calibrated them, on what and with what result."""
    calibration = thresholds.calibration
    return {
        "review": thresholds.review,
        "fail": thresholds.fail,
        "calibration": None if calibration is None else calibration.as_json(),
        "calibration_summary": None if calibration is None else calibration.describe(),
    }


def _figures(results: Sequence[ModelResult], truth: _Truth) -> dict[str, str]:
    """Figures for the headline (real) group; per-model histograms and class bars."""
    real = ~truth.is_synthetic
    curves = [plots.Curve(r.scored.model_name, r.scored.scores[real], truth.is_defect[real]) for r in results]
    figures = {"roc": plots.roc_plot(curves), "pr": plots.pr_plot(curves)}
    for k, r in enumerate(results):
        name = r.scored.model_name
        figures[f"histogram_{k}"] = plots.score_histogram(
            r.scored.scores[real], truth.is_defect[real], r.scored.thresholds, f"{name}: scores of real items"
        )
        if r.headline.recall_by_class:
            figures[f"classes_{k}"] = plots.class_recall_bars(
                r.headline.recall_by_class, f"{name}: recall by class"
            )
    return figures


def _worst_items(store: ImageStore, suite: Suite, result: ModelResult, truth: _Truth) -> list[dict[str, Any]]:
    """Lowest-scoring defective and highest-scoring good items of the first model, as thumbnails."""
    scores, scored = result.scored.scores, result.scored
    decided = decisions(scores, scored.thresholds)
    defects = np.flatnonzero(truth.is_defect)
    goods = np.flatnonzero(~truth.is_defect)
    chosen = [
        *defects[np.argsort(scores[defects])][:WORST_SHOWN],
        *goods[np.argsort(-scores[goods])][:WORST_SHOWN],
    ]
    normal = scored.maps[goods] if goods.size else scored.maps
    normal_level = float(np.median(normal))
    shown = []
    for k in chosen:
        item = suite.items[k]
        image = decode_image(store.get(item.image_sha256), f"suite item {item.image_sha256}")
        shown.append(
            {
                "image": plots.miss_thumbnail(image, scored.maps[k], normal_level, scored.thresholds.fail),
                "truth": item.defect_class or item.label,
                "synthetic": item.is_synthetic,
                "score": float(scores[k]),
                "decision": str(decided[k]),
                "sha256": item.image_sha256,
            }
        )
    return shown
