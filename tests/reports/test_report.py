"""Building reports: figures agree with scikit-learn, the page is self-contained, the gate and
the review gate hold, reports are stored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import text
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.decide import Thresholds
from pipeline.errors import ReviewRequired
from pipeline.inspection import Workspace
from pipeline.reports import cli as reports_cli
from pipeline.reports import suites
from pipeline.reports.build import ModelUnderTest, build_report
from pipeline.reports.gate import parse_bounds
from pipeline.reports.history import list_reports
from tests.reports.conftest import (
    CRACK_CONTRASTS,
    N_GOOD,
    SPOT_CONTRASTS,
    BrightnessScorer,
    add_synthetic_image,
)


@pytest.fixture
def parts_suite(report_ws: Workspace, mvtec_folder: Path) -> suites.Suite:
    with report_ws.session() as session, session.begin():
        return suites.create_suite(session, "parts", suites.items_from_data(report_ws.store, mvtec_folder))


def test_report_figures_page_and_history(
    report_ws: Workspace, parts_suite: suites.Suite, tmp_path: Path
) -> None:
    scorer = BrightnessScorer()
    built = build_report(
        report_ws, "parts", [ModelUnderTest("bright", scorer)], tmp_path / "out", created_by="qa"
    )
    doc = json.loads(built.json_path.read_text())
    real = doc["models"][0]["groups"]["real"]
    scores = np.array([item["scores"]["bright"] for item in doc["items"]])
    truth = np.array([item["label"] == "defect" for item in doc["items"]])
    assert real["image_auroc"] == pytest.approx(roc_auc_score(truth, scores))
    assert (real["n_good"], real["n_defect"]) == (N_GOOD, len(CRACK_CONTRASTS) + len(SPOT_CONTRASTS))
    # The two faintest squares (contrast 6 and 10) score below review: exactly two escapes.
    assert real["confusion"]["defect"]["PASS"] == 2
    assert real["escape_rate"] == pytest.approx(2 / 8)
    assert real["escape_rate_ci"]["low"] < 0.25 < real["escape_rate_ci"]["high"]
    assert real["pixel_auroc"] is not None and real["pro"] is not None  # cracks have masks
    assert set(real["recall_by_class"]) == {"crack", "spot"}
    assert doc["suite"]["digest"] == parts_suite.digest

    page = built.html_path.read_text()
    assert "data:image/png;base64," in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from a network
    assert page.count("<img") >= 4 + 12  # ROC, PR, histogram, classes + worst-case thumbnails

    with report_ws.session() as session:
        (record,) = list_reports(session, suite_name="parts")
    assert (record.model_version, record.suite_digest, record.created_by) == (
        "bright-1",
        parts_suite.digest,
        "qa",
    )
    assert record.metrics["escape_rate"] == pytest.approx(0.25)


def test_compare_puts_two_models_side_by_side(
    report_ws: Workspace, parts_suite: suites.Suite, tmp_path: Path
) -> None:
    strict = BrightnessScorer("bright-strict", Thresholds(review=0.03, fail=0.3))
    models = [ModelUnderTest("bright", BrightnessScorer()), ModelUnderTest("strict", strict)]
    built = build_report(report_ws, "parts", models, tmp_path / "out", created_by="qa")
    comparison = json.loads(built.json_path.read_text())["comparison"]
    assert comparison["image_auroc"]["value"] == pytest.approx(0.0)  # same scores, other thresholds
    assert comparison["escape_rate"]["value"] == pytest.approx(2 / 8)  # the strict one catches both
    assert set(comparison["false_reject_rate"]) >= {"low", "high", "p_value", "significant"}
    assert len(built.report_ids) == 2


def test_gate_result_is_in_the_report(
    report_ws: Workspace, parts_suite: suites.Suite, tmp_path: Path
) -> None:
    bounds = parse_bounds("image_auroc=0.5,escape_rate<=0.01")
    built = build_report(
        report_ws,
        "parts",
        [ModelUnderTest("bright", BrightnessScorer())],
        tmp_path / "o",
        created_by="qa",
        bounds=bounds,
    )
    assert built.gate is not None and not built.gate.passed
    assert [str(c.bound) for c in built.gate.missed] == ["escape_rate <= 0.01"]
    assert json.loads(built.json_path.read_text())["gate"]["passed"] is False


def test_cli_gate_exits_non_zero_naming_the_missed_bound(
    report_ws: Workspace, parts_suite: suites.Suite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports_cli, "load_scorer", lambda ws, name: BrightnessScorer())
    args = [
        "report",
        "--suite",
        "parts",
        "--model",
        "bright",
        "--out",
        str(tmp_path / "out"),
        "--data-dir",
        str(report_ws.data_dir),
    ]
    missed = CliRunner().invoke(app, [*args, "--fail-under", "image_auroc=0.5,escape_rate<=0.01"])
    assert missed.exit_code == 1, missed.output
    assert "gate failed" in missed.output and "escape_rate <= 0.01" in missed.output
    passed = CliRunner().invoke(app, [*args, "--fail-under", "image_auroc=0.5,escape_rate<=0.3"])
    assert passed.exit_code == 0, passed.output
    typo = CliRunner().invoke(app, [*args, "--fail-under", "escapes<=0.1"])
    assert typo.exit_code == 2 and "unknown metric 'escapes'" in typo.output
    history = CliRunner().invoke(app, ["suite", "history", "parts", "--data-dir", str(report_ws.data_dir)])
    assert history.exit_code == 0 and "2 report(s) on suite 'parts'" in history.output
    with report_ws.session() as session:
        stored = [r.metrics["gate_passed"] for r in list_reports(session, suite_name="parts")]
    assert stored == [False, True]  # the typo was refused before any report was built


def test_cli_suite_create_and_history(report_ws: Workspace, mvtec_folder: Path) -> None:
    data_dir = ["--data-dir", str(report_ws.data_dir)]
    created = CliRunner().invoke(app, ["suite", "create", "parts", "--data", str(mvtec_folder), *data_dir])
    assert created.exit_code == 0, created.output
    assert f"{N_GOOD + 8} items" in created.output
    listed = CliRunner().invoke(app, ["suite", "list", *data_dir])
    assert "parts" in listed.output
    add_synthetic_image(report_ws, status="approved", seed=1)
    add_synthetic_image(report_ws, status="pending", seed=2)
    added = CliRunner().invoke(app, ["suite", "add", "parts", "--synthetic", "approved", *data_dir])
    assert added.exit_code == 0 and "1 synthetic" in added.output, added.output
    pending = CliRunner().invoke(app, ["suite", "add", "parts", "--synthetic", "pending", *data_dir])
    assert pending.exit_code == 2  # not a choice: pending images cannot be selected at all


def test_report_refuses_a_suite_whose_synthetic_image_lost_its_approval(
    report_ws: Workspace, parts_suite: suites.Suite, tmp_path: Path
) -> None:
    image = add_synthetic_image(report_ws, status="approved")
    with report_ws.session() as session, session.begin():
        suites.add_items(session, "parts", suites.approved_synthetic_items(session))
    model = [ModelUnderTest("bright", BrightnessScorer())]
    built = build_report(report_ws, "parts", model, tmp_path / "ok", created_by="qa")
    synthetic = json.loads(built.json_path.read_text())["models"][0]["groups"]["synthetic"]
    assert synthetic["n_defect"] == 1 and synthetic["n_good"] == N_GOOD

    # The database refuses to un-approve an image a suite holds; a database without that
    # trigger (or edited by hand) must still not get past the report.
    with report_ws.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS trg_synthetic_images_review_gate"))
        connection.execute(
            text("UPDATE synthetic_images SET status = 'pending' WHERE id = :id"), {"id": image.id}
        )
    with pytest.raises(
        ReviewRequired, match=rf"report on suite 'parts': synthetic images \[{image.id}\] are not approved"
    ):
        build_report(report_ws, "parts", model, tmp_path / "refused", created_by="qa")
    assert not (tmp_path / "refused").exists()
