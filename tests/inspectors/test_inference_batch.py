"""QCFLOW_INFERENCE_BATCH: frames per anomaly-model call, for CPUs where another batch runs faster."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspectors.anomaly import CPU_BATCH, GPU_BATCH, AnomalyInspector
from pipeline.errors import ConfigError


def test_the_variable_sets_the_batch_unless_the_caller_gives_one(
    anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QCFLOW_INFERENCE_BATCH", raising=False)
    assert AnomalyInspector(anomaly_model_dir).batch_size in (CPU_BATCH, GPU_BATCH)
    monkeypatch.setenv("QCFLOW_INFERENCE_BATCH", "8")
    assert AnomalyInspector(anomaly_model_dir).batch_size == 8
    assert AnomalyInspector(anomaly_model_dir, batch_size=1).batch_size == 1


@pytest.mark.parametrize("value", ["eight", "0"])
def test_a_bad_value_names_the_variable(
    anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("QCFLOW_INFERENCE_BATCH", value)
    with pytest.raises(ConfigError, match=rf"QCFLOW_INFERENCE_BATCH: .*\(got '{value}'\)"):
        AnomalyInspector(anomaly_model_dir)


def test_an_empty_variable_counts_as_unset(anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCFLOW_INFERENCE_BATCH", "")
    monkeypatch.setenv("QCFLOW_INFERENCE_THREADS", "")
    inspector = AnomalyInspector(anomaly_model_dir)
    assert inspector.batch_size in (CPU_BATCH, GPU_BATCH)
    assert inspector.session.get_session_options().intra_op_num_threads == 0
