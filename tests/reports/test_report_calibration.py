"""A report shows how the model's thresholds were calibrated, when the model recorded it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.decide import calibrate_thresholds
from pipeline.inspection import Workspace
from pipeline.reports import suites
from pipeline.reports.build import ModelUnderTest, build_report
from tests.reports.conftest import BrightnessScorer


@pytest.fixture
def parts_suite(report_ws: Workspace, mvtec_folder: Path) -> suites.Suite:
    with report_ws.session() as session, session.begin():
        return suites.create_suite(session, "parts", suites.items_from_data(report_ws.store, mvtec_folder))


def test_report_shows_the_calibration_record(
    report_ws: Workspace, parts_suite: suites.Suite, tmp_path: Path
) -> None:
    thresholds = calibrate_thresholds(np.linspace(0.02, 0.08, 40), [0.09, 0.2, 0.5, 0.9])
    calibrated = ModelUnderTest("calibrated", BrightnessScorer("c-1", thresholds))
    by_hand = ModelUnderTest("by-hand", BrightnessScorer())  # e.g. a line's override: no record
    built = build_report(report_ws, "parts", [calibrated, by_hand], tmp_path / "out", created_by="qa")
    models = json.loads(built.json_path.read_text())["models"]
    record = models[0]["thresholds"]["calibration"]
    assert (record["n_good"], record["n_defect"], record["escape"]["events"]) == (40, 4, 0)
    assert models[1]["thresholds"]["calibration"] is None
    page = " ".join(built.html_path.read_text().split())
    assert "Threshold calibration" in page and "40 good and 4 defective images" in page
    assert page.count("Threshold calibration") == 1
