"""The anomaly specialist on ONNX Runtime's CUDA provider: picked on a GPU, and it scores as the CPU does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inspectors.anomaly import GPU_BATCH, AnomalyInspector
from pipeline.simulate import SimulationSettings, render_part

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="needs onnxruntime-gpu (the [gpu] extra) and a CUDA GPU",
    ),
]


def test_cuda_scores_as_the_cpu_does(anomaly_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [render_part(SimulationSettings(size=256, seed=4, defect_rate=0.5), i).image for i in range(12)]
    gpu = AnomalyInspector(anomaly_model_dir)
    assert gpu.providers[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert gpu.batch_size == GPU_BATCH
    gpu_maps, gpu_scores = gpu.score_images(images)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    cpu = AnomalyInspector(anomaly_model_dir)
    assert cpu.providers == ("CPUExecutionProvider",)
    cpu_maps, cpu_scores = cpu.score_images(images)

    # cuDNN and cuBLAS may round in TF32, so scores agree to about 1% (two parts that close may swap
    # places in a ranking); decisions rest on scores
    np.testing.assert_allclose(gpu_scores, cpu_scores, rtol=0.01)
    assert np.abs(gpu_maps - cpu_maps).max() <= 0.02 * cpu_maps.max()
