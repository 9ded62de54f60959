"""QCFLOW_INFERENCE_THREADS: ONNX Runtime threads per session, for several workers on one machine."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from inspectors.anomaly import AnomalyInspector
from inspectors.ocr import _engine
from pipeline.errors import ConfigError
from pipeline.inspection import open_workspace


def test_without_the_variable_sessions_keep_one_thread_per_core(
    anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QCFLOW_INFERENCE_THREADS", raising=False)
    inspector = AnomalyInspector(anomaly_model_dir)
    assert inspector.session.get_session_options().intra_op_num_threads == 0  # ONNX Runtime's default


def test_the_variable_sets_each_sessions_threads(
    anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QCFLOW_INFERENCE_THREADS", "1")
    inspector = AnomalyInspector(anomaly_model_dir)
    assert inspector.session.get_session_options().intra_op_num_threads == 1
    maps, scores = inspector.score_images([])
    assert maps.shape[0] == scores.shape[0] == 0


@pytest.mark.parametrize("value", ["two", "0"])
def test_a_bad_value_names_the_variable(
    anomaly_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("QCFLOW_INFERENCE_THREADS", value)
    with pytest.raises(ConfigError, match=rf"QCFLOW_INFERENCE_THREADS: .*\(got '{value}'\)"):
        AnomalyInspector(anomaly_model_dir)
    with pytest.raises(ConfigError, match="QCFLOW_INFERENCE_THREADS"):
        open_workspace(tmp_path / "data", tmp_path / "config")


def test_the_ocr_engine_gets_the_same_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    given: dict[str, object] = {}
    fake = types.ModuleType("rapidocr")
    fake.RapidOCR = lambda params: given.update(params)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rapidocr", fake)
    monkeypatch.setenv("QCFLOW_INFERENCE_THREADS", "1")
    _engine(None)
    assert given["EngineConfig.onnxruntime.intra_op_num_threads"] == 1
    _engine(3)  # an inspection lane's share of the cores
    assert given["EngineConfig.onnxruntime.intra_op_num_threads"] == 3
    monkeypatch.delenv("QCFLOW_INFERENCE_THREADS")
    given.clear()
    _engine(None)
    assert "EngineConfig.onnxruntime.intra_op_num_threads" not in given
