"""The torch device a fit runs on, checked before any work (torch is imported only when asked)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    import torch


def torch_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a GPU that torch cannot see is refused with what torch has."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device {name!r}: not a torch device (expected cpu, cuda or cuda:N): {e}") from e
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (device.index is not None and device.index >= count):
            raise ConfigError(
                f"device {name!r}: torch {torch.__version__} sees {count} CUDA device(s); "
                "fit on cpu, or install a CUDA build of torch"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r}: only cpu and cuda are supported for fitting")
    return device
