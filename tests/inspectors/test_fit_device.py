"""Fitting the anomaly model on a torch device: checked first, and the same model as on the CPU."""

from __future__ import annotations

import pytest
import torch

from inspectors.preprocess import to_model_input
from inspectors.training.patchcore import PatchCoreSettings, fit_patchcore
from pipeline.errors import ConfigError
from pipeline.simulate import SimulationSettings, render_part

GOOD = [render_part(SimulationSettings(size=128, seed=2), i, None).image for i in range(4)]


def test_an_onnx_extractor_is_not_fitted_on_a_gpu() -> None:
    settings = PatchCoreSettings(backbone="onnx:/models/extractor.onnx", device="cuda")
    with pytest.raises(ConfigError, match="backbone onnx:/models/extractor.onnx runs in ONNX Runtime"):
        fit_patchcore(GOOD, settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_gpu_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="device 'cuda': torch .* sees 0 CUDA device"):
        fit_patchcore(GOOD, PatchCoreSettings(bank_size=64, device="cuda"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_fit_gives_the_cpu_fit_for_cpu_scoring() -> None:
    cpu = fit_patchcore(GOOD, PatchCoreSettings(bank_size=64))
    gpu = fit_patchcore(GOOD, PatchCoreSettings(bank_size=64, device="cuda"))
    assert gpu.bank.device.type == "cpu" and next(gpu.parameters()).device.type == "cpu"
    assert gpu.bank.shape == cpu.bank.shape
    # GPU convolutions round differently (TF32), so a pick may differ; the scores must not
    sim = SimulationSettings(size=128, seed=3)
    frames = [render_part(sim, i).image for i in range(6)]
    batch = torch.from_numpy(to_model_input(frames, cpu.preprocessing))
    with torch.no_grad():
        assert torch.allclose(gpu(batch)[1], cpu(batch)[1], rtol=0.05)
