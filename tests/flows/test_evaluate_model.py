"""The evaluate-model flow on a local Dask cluster gives the same figures as the plain function."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.evaluate_model import evaluate_on_dask, local_cluster_kwargs
from pipeline.datasets import open_mvtec
from pipeline.evaluate import evaluate_model


@pytest.mark.slow
def test_dask_evaluation_matches_the_plain_function(
    mvtec_dir: Path,
    anomaly_model_dir: Path,
    tmp_path: Path,
) -> None:
    plain = evaluate_model(anomaly_model_dir, open_mvtec(mvtec_dir))
    with prefect_test_harness(server_startup_timeout=180):
        spread = evaluate_on_dask(anomaly_model_dir, mvtec_dir, tmp_path, workers=2)
    for key in (
        "image_auroc",
        "image_ap",
        "pixel_auroc",
        "false_reject_rate",
        "escape_rate",
        "n_good",
        "n_defect",
    ):
        assert spread[key] == pytest.approx(plain[key]), key
    assert (tmp_path / "metrics.json").is_file()


def test_local_workers_share_the_cores_for_onnx_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QCFLOW_INFERENCE_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert local_cluster_kwargs(2)["env"] == {"QCFLOW_INFERENCE_THREADS": "4"}
    assert local_cluster_kwargs(16)["env"] == {"QCFLOW_INFERENCE_THREADS": "1"}
    monkeypatch.setenv("QCFLOW_INFERENCE_THREADS", "3")  # the user's choice is inherited as it is
    assert local_cluster_kwargs(2)["env"] == {}
