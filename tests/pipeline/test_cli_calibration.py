"""``qcflow fit anomaly --calibration-defects`` and ``--calibration-good``: defects from their own folder
set the review threshold, good images of other parts the thresholds, the figures reach model.json, the
registry and ``models show``; the evaluation split is never used for calibration unless asked for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
from typer.testing import CliRunner, Result

from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import ModelCard
from pipeline.cli import app
from pipeline.db import repository as repo
from pipeline.inspection import open_workspace
from pipeline.simulate import SimulationSettings, render_part

runner = CliRunner()


def flat(output: str) -> str:
    """The console wraps long lines; compare words, not line breaks."""
    return " ".join(output.split())


def defect_folder(root: Path) -> Path:
    """Defective parts of the same simulated product as ``mvtec_dir``, from indices it does not use."""
    sim = SimulationSettings(size=256, seed=11)
    for i, kind in enumerate(("crack", "pit") * 4):
        (root / kind).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / kind / f"{300 + i:03d}.png"), render_part(sim, 300 + i, defect=kind).image)
    return root


def test_fit_with_calibration_defects_records_what_set_each_threshold(
    mvtec_dir: Path, tmp_path: Path
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    defects = defect_folder(tmp_path / "defects")
    fit = runner.invoke(
        app,
        ["fit", "anomaly", "--data", str(mvtec_dir), "--name", "cal", "--bank-size", "128"]
        + ["--calibration-defects", str(defects), *data],
    )
    assert fit.exit_code == 0, fit.output
    assert "8 defective images" in flat(fit.output) and "escape" in fit.output
    ws = open_workspace(tmp_path / "data")
    with ws.session() as session:
        record = repo.get_active_model(session, "cal")
    card = ModelCard.load(Path(record.path))
    calibration = card.thresholds.calibration
    assert calibration is not None
    assert (calibration.n_defect, calibration.target_escape) == (8, 0.01)
    assert calibration.n_good == card.training["n_calibration_images"]
    assert card.training["calibration_defects"]["n_images"] == 8
    assert card.training["calibration_defects"]["n_in_evaluation_split"] == 0
    # the registry row carries the same record, with the intervals
    stored = record.thresholds["calibration"]
    assert stored == json.loads((Path(record.path) / "model.json").read_text())["thresholds"]["calibration"]
    for figure in ("false_reject", "review_rate", "escape"):
        assert {"events", "n", "value", "low", "high", "method"} <= stored[figure].keys()
    assert stored["rules"]["review"] == calibration.review_rule
    # what the record says was achieved is what the thresholds do to those scores
    escaped = stored["escape"]["events"]
    assert stored["escape_target_met"] is (escaped == 0)  # 1% of 8 defects: none may escape
    shown = runner.invoke(app, ["models", "show", "cal", *data])
    assert shown.exit_code == 0, shown.output
    assert '"calibration"' in shown.output and "8 defective images" in flat(shown.output)


def fit_with_defects(data: Path, defects: Path, tmp_path: Path) -> Result:
    return runner.invoke(
        app,
        ["fit", "anomaly", "--data", str(data), "--name", "m", "--calibration-defects", str(defects)]
        + ["--data-dir", str(tmp_path / "data")],
    )


def test_calibrating_on_the_evaluation_split_is_refused(mvtec_dir: Path, tmp_path: Path) -> None:
    result = fit_with_defects(mvtec_dir, mvtec_dir, tmp_path)
    assert result.exit_code == 2, result.output
    assert "DatasetError" in result.output and "allow-evaluation-overlap" in flat(result.output)


def test_evaluation_counts_and_warns_about_test_images_the_model_already_saw(
    mvtec_dir: Path, tmp_path: Path
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    fit = runner.invoke(
        app,
        ["fit", "anomaly", "--data", str(mvtec_dir), "--name", "m", "--bank-size", "128"]
        + ["--calibration-defects", str(mvtec_dir), "--allow-evaluation-overlap", *data],
    )
    assert fit.exit_code == 0, fit.output
    leaky = tmp_path / "leaky"
    shutil.copytree(mvtec_dir, leaky)
    for train_image in sorted((mvtec_dir / "train" / "good").iterdir()):  # every training image
        shutil.copy(train_image, leaky / "test" / "good" / f"copy-{train_image.name}")
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--model", "m", "--data", str(leaky), "--out", str(out), *data])
    assert result.exit_code == 0, result.output
    overlap = json.loads((out / "metrics.json").read_text())["overlap_with_model_data"]
    ws = open_workspace(tmp_path / "data")
    with ws.session() as session:
        card = ModelCard.load(Path(repo.get_active_model(session, "m").path))
    assert overlap == {
        "fit": card.training["n_fit_images"],
        "calibration": card.training["n_calibration_images"],
        "calibration_defects": 10,
    }
    assert "10 test images are among the model's calibration defects images" in flat(result.output)
    assert "optimistic" in result.output


def test_empty_calibration_defect_folder_is_a_clear_error(mvtec_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    result = fit_with_defects(mvtec_dir, tmp_path / "none", tmp_path)
    assert result.exit_code == 2 and "no defective images" in flat(result.output)


def test_calibration_targets_come_from_the_command_line(mvtec_dir: Path, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    base = ["fit", "anomaly", "--data", str(mvtec_dir), "--bank-size", "128", *data]
    for name, targets in (("default", []), ("wide", ["--target-review-rate", "0.3"])):
        fit = runner.invoke(app, [*base, "--name", name, "--target-false-reject", "0.02", *targets])
        assert fit.exit_code == 0, fit.output
    ws = open_workspace(tmp_path / "data")
    with ws.session() as session:
        cards = {n: ModelCard.load(Path(repo.get_active_model(session, n).path)) for n in ("default", "wide")}
    for card in cards.values():
        assert card.thresholds.calibration is not None
        assert card.thresholds.calibration.target_false_reject == 0.02
    assert cards["wide"].thresholds.calibration.target_review_rate == 0.3  # type: ignore[union-attr]
    # a wider review budget reaches further down into the good parts' scores
    assert cards["wide"].thresholds.review < cards["default"].thresholds.review


def test_fit_calibrates_on_good_images_of_other_parts_when_given(mvtec_dir: Path, tmp_path: Path) -> None:
    sim = SimulationSettings(size=256, seed=11)
    other_parts = tmp_path / "other-parts"
    other_parts.mkdir()
    for i in range(400, 410):  # indices the dataset does not use
        cv2.imwrite(str(other_parts / f"{i}.png"), render_part(sim, i, defect=None).image)
    data = ["--data-dir", str(tmp_path / "data")]
    fit = runner.invoke(
        app,
        ["fit", "anomaly", "--data", str(mvtec_dir), "--name", "other", "--bank-size", "128"]
        + ["--calibration-good", str(other_parts), *data],
    )
    assert fit.exit_code == 0, fit.output
    assert f"calibrated on 10 good images, {other_parts.resolve()}" in flat(fit.output)
    ws = open_workspace(tmp_path / "data")
    with ws.session() as session:
        model_dir = Path(repo.get_active_model(session, "other").path)
    card = ModelCard.load(model_dir)
    assert card.training["n_fit_images"] == 24  # every training image
    assert card.training["calibration_source"] == str(other_parts.resolve())
    # the fail threshold is the 99% quantile (rounded up: the highest of 10) of those parts' scores
    images = [cv2.imread(str(p)) for p in sorted(other_parts.iterdir())]
    _, scores = AnomalyInspector(model_dir).score_images(images)
    assert card.thresholds.fail == float(scores.max())
