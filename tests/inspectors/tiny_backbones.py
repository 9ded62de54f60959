"""Tiny backbones built in the test: random-init HF folders and an ONNX extractor from a small conv net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

IMAGE_SIZE = 128


def tiny_vit_config(image_size: int = IMAGE_SIZE) -> object:
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=image_size,
        patch_size=8,
    )


def save_vit(folder: Path) -> Path:
    from transformers import ViTModel

    torch.manual_seed(0)
    ViTModel(tiny_vit_config()).save_pretrained(folder)
    return folder


def save_dinov2_with_registers(folder: Path, registers: int = 4) -> Path:
    """DINOv2 resizes its position table to the input grid (here 8×8 from a 37×37 default)."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(0)
    config = Dinov2WithRegistersConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=112,
        patch_size=14,
        num_register_tokens=registers,
    )
    Dinov2WithRegistersModel(config).save_pretrained(folder)
    return folder


def save_convnext(folder: Path) -> Path:
    from transformers import ConvNextConfig, ConvNextModel

    torch.manual_seed(0)
    # layer scale 1.0: random blocks that change their input (the default 1e-6 makes them identities)
    config = ConvNextConfig(
        hidden_sizes=[32, 64, 128, 256],
        depths=[1, 1, 1, 1],
        image_size=IMAGE_SIZE,
        layer_scale_init_value=1.0,
    )
    ConvNextModel(config).save_pretrained(folder)
    return folder


class _SmallConvNet(nn.Module):
    """Feature maps at stride 4 and 8, plus a pooled vector (not a map)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.a(x)
        return a, self.b(a), a.mean(dim=(2, 3))


def save_onnx_extractor(path: Path, *, opset: int = 18, dynamic_batch: bool = True) -> Path:
    """Input ``input`` N×3×128×128; outputs ``f4``, ``f8`` (maps) and ``pooled`` (N×16)."""
    torch.onnx.export(
        _SmallConvNet().eval(),
        (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),),
        str(path),
        input_names=["input"],
        output_names=["f4", "f8", "pooled"],
        dynamic_axes={"input": {0: "n"}} if dynamic_batch else None,
        opset_version=opset,
        dynamo=False,
    )
    return path


def with_checker_patch(image: np.ndarray, x: int, y: int, side: int = 20) -> np.ndarray:
    """A procedural defect: a 2-px checkerboard square, a texture no good part has."""
    out = image.copy()
    yy, xx = np.mgrid[0:side, 0:side]
    out[y : y + side, x : x + side] = (((yy // 2 + xx // 2) % 2) * 255).astype(np.uint8)[..., None]
    return out
