"""The torch device a fit runs on is checked before any work."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import ConfigError  # noqa: E402
from pipeline.torch_device import torch_device  # noqa: E402


def test_cpu_is_always_there() -> None:
    assert torch_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("gpu0", r"device 'gpu0': not a torch device \(expected cpu, cuda or cuda:N\)"),
        ("meta", r"device 'meta': only cpu and cuda are supported"),
        ("cuda:99", r"device 'cuda:99': torch .* sees \d+ CUDA device\(s\)"),
    ],
)
def test_a_device_that_cannot_fit_is_named(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        torch_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_says_what_torch_has() -> None:
    version = re.escape(torch.__version__)
    with pytest.raises(ConfigError, match=rf"device 'cuda': torch {version} sees 0 CUDA device"):
        torch_device("cuda")
