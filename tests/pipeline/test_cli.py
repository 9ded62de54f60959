"""The qcflow command line: fit and evaluate on an MVTec-layout dataset made in the test."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.db import repository as repo
from pipeline.inspection import Workspace, open_workspace

runner = CliRunner()


def test_fit_then_evaluate_writes_metrics(mvtec_dir: Path, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    fit = runner.invoke(
        app, ["fit", "anomaly", "--data", str(mvtec_dir), "--name", "sim", "--bank-size", "512", *data]
    )
    assert fit.exit_code == 0, fit.output
    assert "registered sim" in fit.output
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["evaluate", "--model", "sim", "--data", str(mvtec_dir), "--out", str(out), *data]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {
        "image_auroc",
        "image_ap",
        "pixel_auroc",
        "threshold",
        "false_reject_rate",
        "escape_rate",
        "n_good",
        "n_defect",
        "images_per_second",
    } <= metrics.keys()
    assert (metrics["n_good"], metrics["n_defect"]) == (10, 10)
    assert metrics["overlap_with_model_data"] == {"fit": 0, "calibration": 0}
    assert "optimistic" not in result.output
    assert metrics["image_auroc"] >= 0.9
    assert metrics["pixel_auroc"] is not None and metrics["pixel_auroc"] >= 0.8
    by_type = metrics["pixel_auroc_by_defect_type"]
    assert by_type.keys() == {"crack", "pit"} and min(by_type.values()) >= 0.8
    listing = runner.invoke(app, ["models", "list", *data])
    assert "sim" in listing.output and "yes" in listing.output
    ws = open_workspace(tmp_path / "data")
    with ws.session() as session:
        (record,) = repo.list_models(session)
    # a listing read by a script or a log, not a terminal, keeps what is copied from it whole
    assert record.version in listing.output and record.path in listing.output
    shown = runner.invoke(app, ["models", "show", "sim", *data])
    assert '"kind": "anomaly"' in shown.output and '"parity"' in shown.output


def test_activation_needs_an_admin_and_is_audited(
    mvtec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.audit import list_audit

    data = ["--data-dir", str(tmp_path / "data")]
    for _ in range(2):
        fit = runner.invoke(
            app, ["fit", "anomaly", "--data", str(mvtec_dir), "--name", "m", "--bank-size", "128", *data]
        )
        assert fit.exit_code == 0, fit.output
    ws = open_workspace(tmp_path / "data")
    with ws.session() as session:
        first = min(r.version for r in repo.list_models(session))
    monkeypatch.setenv("QCFLOW_NEW_USER_PASSWORD", "correct horse battery")
    for name, role in (("olga", "operator"), ("ada", "admin")):
        assert runner.invoke(app, ["users", "add", name, "--role", role, *data]).exit_code == 0
    refused = runner.invoke(app, ["models", "activate", "m", first, "--by", "olga", *data])
    assert refused.exit_code == 2 and "may not activate" in refused.output
    done = runner.invoke(app, ["models", "activate", "m", first, "--by", "ada", *data])
    assert done.exit_code == 0, done.output
    with ws.session() as session:
        assert repo.get_active_model(session, "m").version == first
        entry = list_audit(session)[0]
    assert (entry.user_name, entry.action, entry.after) == ("ada", "model.activate", {"version": first})


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "fit",
            "anomaly",
            "--data",
            str(tmp_path / "nope"),
            "--name",
            "x",
            "--data-dir",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 2
    assert "DatasetError" in result.output and "nope" in result.output


def test_unknown_model_is_a_clear_error(mvtec_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            "ghost",
            "--data",
            str(mvtec_dir),
            "--out",
            str(tmp_path),
            "--data-dir",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 2 and "ghost" in result.output


def test_unreachable_database_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCFLOW_DATABASE_URL", "postgresql+psycopg://qc:secret@127.0.0.1:9/qcflow")
    result = runner.invoke(app, ["status", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "127.0.0.1:9" in result.output and "secret" not in result.output


def test_pixel_auroc_by_type_scores_each_type_against_good_parts() -> None:
    import numpy as np

    from pipeline.evaluate import _pixel_auroc_by_type

    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    good = np.zeros((4, 4), np.float32)
    found = mask.astype(np.float32) * 2  # high inside its mask
    missed = (~mask).astype(np.float32) * 2  # high everywhere but its mask
    by_type = _pixel_auroc_by_type([good, found, missed], [~np.ones_like(mask), mask, mask], [None, "a", "b"])
    assert by_type["a"] == 1.0
    assert by_type["b"] < 0.5  # its own mask scores below the rest of its frame


def test_ctrl_c_during_inspect_says_what_stays_logged_and_ends_with_130(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.inspect_line

    release = threading.Event()
    monkeypatch.setattr(flows.inspect_line, "inspect_line", lambda *a, **k: release.wait(30))  # a long run
    counts = iter([{"PASS": 10}, KeyboardInterrupt(), {"PASS": 50, "FAIL": 8}])

    def decision_counts(*_: object) -> dict[str, int]:
        value = next(counts)
        if isinstance(value, BaseException):
            raise value
        return value

    class Exited(Exception):
        pass

    def exit_now(status: int) -> None:  # the process would end here, its flow thread with it
        raise Exited(status)

    monkeypatch.setattr(repo, "decision_counts", decision_counts)
    monkeypatch.setattr(os, "_exit", exit_now)
    data = ["--data-dir", str(workspace.data_dir), "--config-dir", str(workspace.config_dir)]
    try:
        result = runner.invoke(app, ["inspect", "--line", "test", *data])
    finally:
        release.set()
    assert isinstance(result.exception, Exited) and result.exception.args == (130,)
    assert "interrupted: the 48 inspections logged before it stay" in " ".join(result.output.split())
