"""The batch flows under the Prefect test harness: train_model and build_report.

Fitting itself is tested with the training package; here it is replaced by registering an
already fitted model under a new version, so the test is about what the flow decides. Reports
are tested in tests/pipeline; here the flow must write one and fail its run when a bound is missed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

import pipeline.fitting
from flows.build_report import ReportGateMissed, build_report
from flows.train_model import train_model
from pipeline.db import repository as repo
from pipeline.db.model_registry import ModelRecord
from pipeline.images import encode_png
from pipeline.inspection import Workspace
from pipeline.sources import SimulatedSource
from tests.conftest import TEST_SIMULATION


@pytest.fixture(scope="module")
def prefect_harness():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _mvtec_dataset(root: Path) -> Path:
    """A few simulated parts in MVTec layout: good ones to train and test, defective ones to test."""
    parts = SimulatedSource(TEST_SIMULATION + "&defect_rate=0.5", "test", "cam1").line.parts(1000, 24)
    for part in parts:
        folder = root / "test" / (part.defect or "good")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{part.index}.png").write_bytes(encode_png(part.image))
    (root / "train").mkdir()
    shutil.copytree(root / "test" / "good", root / "train" / "good")
    return root


@pytest.fixture
def new_version(
    workspace: Workspace, anomaly_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Make 'fitting' register a copy of the test model as a new, inactive version."""
    model_dir = shutil.copytree(anomaly_model_dir, tmp_path / "fitted")
    card = json.loads((model_dir / "model.json").read_text())
    card["version"] = "fitted-by-flow"
    (model_dir / "model.json").write_text(json.dumps(card))

    def fake_fit(
        ws: Workspace, data: Path, name: str, *, activate: bool, **fit_options: object
    ) -> ModelRecord:
        assert name == "test-anomaly" and (data / "train" / "good").is_dir()
        fitted_with.append(fit_options)
        return pipeline.fitting.register_model_dir(ws, model_dir, activate=activate)

    monkeypatch.setattr(pipeline.fitting, "fit_from_dataset", fake_fit)
    return "fitted-by-flow"


fitted_with: list[dict[str, object]] = []  # the training policy each fake fit was asked for


def _active_version(ws: Workspace) -> str:
    with ws.session() as session:
        return repo.get_active_model(session, "test-anomaly").version


@pytest.mark.parametrize("auto_activate", [False, True])
def test_train_model_evaluates_and_activates_only_when_configured(
    prefect_harness: None, workspace: Workspace, new_version: str, tmp_path: Path, auto_activate: bool
) -> None:
    if auto_activate:
        line_file = workspace.config_dir / "lines" / "test.yaml"
        line_file.write_text(
            line_file.read_text().replace(
                "model: test-anomaly",
                "model: test-anomaly, auto_activate: true, "
                "backbone: lite1, edge_padding: 32, bank_size: 8192, blur_sigma: 12, aspect: pad, "
                "coarse_window: 0.6, coarse_weight: 1.0, coarse_sigma: 24, coarse_relative: 0.5, "
                "image_size: 320",
            )
        )
    before = _active_version(workspace)
    other_parts = tmp_path / "other-parts" if auto_activate else None  # good images of other parts
    outcome = train_model(
        "test",
        str(_mvtec_dataset(tmp_path / "dataset")),
        data_dir=str(workspace.data_dir),
        config_dir=str(workspace.config_dir),
        database_url=workspace.database_url,
        calibration_good=None if other_parts is None else str(other_parts),
    )
    assert outcome["version"] == new_version and outcome["activated"] is auto_activate
    # the line's training policy, else Lite0, unpadded, 4,096 patches, σ 4, stretched, no coarse descriptor,
    # at the backbone's own input size
    configured = dict(backbone="lite1", edge_padding=32, bank_size=8192, blur_sigma=12.0, aspect="pad")
    default = dict(backbone="lite0", edge_padding=0, bank_size=4096, blur_sigma=4.0, aspect="stretch")
    configured |= dict(coarse_window=0.6, coarse_weight=1.0, coarse_sigma=24.0, coarse_relative=0.5)
    configured |= dict(fine_score=False)  # pad: a fine score needs stretch
    configured |= dict(image_size=320)
    default |= dict(
        coarse_window=0.0, coarse_weight=0.5, coarse_sigma=None, coarse_relative=0.0, fine_score=False
    )
    default |= dict(image_size=None)
    policy = configured if auto_activate else default
    assert fitted_with[-1] == policy | {"calibration_good": other_parts}
    metrics = json.loads(Path(outcome["metrics_path"]).read_text())
    assert metrics["n_good"] > 0 and metrics["n_defect"] > 0
    assert _active_version(workspace) == (new_version if auto_activate else before)


def test_build_report_writes_the_report_and_fails_the_run_on_a_missed_bound(
    prefect_harness: None, workspace: Workspace, tmp_path: Path
) -> None:
    from pipeline.reports.history import list_reports
    from pipeline.reports.suites import create_suite, items_from_mvtec

    dataset = _mvtec_dataset(tmp_path / "dataset")
    with workspace.session() as session, session.begin():
        create_suite(session, "holdout", items_from_mvtec(workspace.store, dataset))
    args = {"data_dir": str(workspace.data_dir), "database_url": workspace.database_url}
    outcome = build_report("holdout", "test-anomaly", **args)
    assert Path(outcome["html_path"]).is_file() and outcome["gate_missed"] == []
    with pytest.raises(ReportGateMissed, match="holdout"):
        build_report("holdout", "test-anomaly", fail_under="image_auroc>=1.01", **args)
    with workspace.session() as session:
        assert len(list_reports(session)) == 2  # the failed gate's report is kept as evidence
