"""``qcflow fit generator``, ``qcflow generate`` and ``qcflow review``: the reviewer's whole path."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from generators.diffusion import read_card
from pipeline.audit import list_audit
from pipeline.cli import app
from pipeline.db.models import UserRow
from pipeline.inspection import open_workspace
from pipeline.review import approved_synthetic_images
from tests.generators.conftest import write_config

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_fit_generate_review_from_the_command_line(mvtec_dir: Path, good_dir: Path, tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    config = ("--config-dir", str(write_config(tmp_path / "config", enabled=True)))
    fitted = _run("fit", "generator", "--data", str(mvtec_dir), "--name", "cli-gen", "--image-size", "32",
                  "--train-steps", "1", *data)  # fmt: skip
    assert "registered generator cli-gen" in fitted
    generated = _run("generate", "--line", "test", "--defect-class", "pit", "--count", "2", "--seed", "3",
                     "--base-images", str(good_dir), "--steps", "2", *data, *config)  # fmt: skip
    first, second = (int(i) for i in re.search(r"ids (\d+)\.\.(\d+)", generated).groups())  # type: ignore[union-attr]
    listed = _run("review", "list", *data)
    assert "pit" in listed and "cli-gen" in listed
    assert "pending" in _run("review", "show", str(first), *data)

    ws = open_workspace(tmp_path / "data")
    with ws.session() as session, session.begin():
        session.add_all([UserRow(name="rita", role="reviewer", password_hash="x"),
                         UserRow(name="otto", role="operator", password_hash="x")])  # fmt: skip
    refused = runner.invoke(app, ["review", "approve", str(first), "--reason", "ok", "--user", "otto", *data])
    assert refused.exit_code == 2 and "'otto' has role 'operator'" in refused.output
    assert "approved by rita" in _run(
        "review", "approve", str(first), "--reason", "real", "--user", "rita", *data
    )
    assert "rejected by rita" in _run(
        "review", "reject", str(second), "--reason", "smudge", "--user", "rita", *data
    )
    twice = runner.invoke(
        app, ["review", "approve", str(first), "--reason", "again", "--user", "rita", *data]
    )
    assert twice.exit_code == 2 and "already approved" in twice.output

    with ws.session() as session:
        assert [r.id for r in approved_synthetic_images(session)] == [first]
        assert session.scalar(select(UserRow.role).where(UserRow.name == "rita")) == "reviewer"
        assert [(e.user_name, e.action) for e in list_audit(session)] == [
            ("rita", "synthetic.rejected"),
            ("rita", "synthetic.approved"),
        ]
    ws.engine.dispose()


def test_generate_refuses_when_generation_is_disabled(tmp_path: Path, good_dir: Path) -> None:
    config = write_config(tmp_path / "config", enabled=False)
    where = ["--data-dir", str(tmp_path / "data"), "--config-dir", str(config)]
    request = ["--line", "test", "--defect-class", "pit", "--count", "1", "--base-images", str(good_dir)]
    result = runner.invoke(app, ["generate", *request, *where])
    assert result.exit_code == 2 and "GenerationDisabled: generation is off" in result.output


def test_fit_generator_takes_the_model_size_and_training_knobs(mvtec_dir: Path, tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    common = ("fit", "generator", "--data", str(mvtec_dir), "--name", "big", "--image-size", "32", *data)
    bad = runner.invoke(app, [*common, "--channels", "8,12"])
    message = " ".join(bad.output.split())  # the console wraps long lines
    assert bad.exit_code == 2
    assert "--channels '8,12': expected two or more comma-separated multiples of 8" in message
    _run(*common, "--channels", "8,16", "--layers-per-block", "2", "--train-steps", "2", "--batch-size", "3",
         "--learning-rate", "0.001", "--ema-decay", "0.99", "--no-match-class")  # fmt: skip
    ws = open_workspace(tmp_path / "data")
    folder = next((ws.models_root / "big").iterdir())
    card = read_card(folder)
    assert card.default_match_class is False
    training = card.training
    assert training["unet"] == {"block_out_channels": [8, 16], "layers_per_block": 2, "image_size": 32}
    assert training["train_steps"] == 2
    assert {k: training["settings"][k] for k in ("batch_size", "learning_rate", "ema_decay", "device")} == {
        "batch_size": 3,
        "learning_rate": 0.001,
        "ema_decay": 0.99,
        "device": "cpu",
    }
