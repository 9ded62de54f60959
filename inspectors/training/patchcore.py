"""PatchCore-style anomaly model: fit in torch, score as one ONNX graph.

Mid-level features of a pretrained EfficientNet-Lite0 (blocks at 1/8 and 1/16
resolution), averaged over a 3×3 neighbourhood, form patch descriptors. A
greedy k-centre coreset of the good parts' descriptors is the memory bank; a
patch's anomaly is its distance to the nearest bank entry. The whole scoring
path - features, nearest neighbour, upsampling and smoothing - is one module
exported to ONNX, so inspection needs no torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inspectors.preprocess import Preprocessing, to_model_input
from inspectors.training.efficientnet_lite import (
    IMAGENET_LITE_MEAN,
    IMAGENET_LITE_STD,
    EfficientNetLite0,
    load_pretrained,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PatchCoreSettings:
    image_size: int = 224
    layers: tuple[int, ...] = (4, 10)  # block outputs at stride 8 (40 ch) and 16 (112 ch)
    neighbourhood: int = 3
    bank_size: int = 4096
    max_candidates: int = 200_000  # patches sampled before the coreset: bounds fit memory
    projection_dim: int = 64  # coreset selection runs on a random projection (speed)
    blur_sigma: float = 4.0
    batch_size: int = 16
    seed: int = 0

    @property
    def preprocessing(self) -> Preprocessing:
        size = (self.image_size, self.image_size)
        return Preprocessing(size, IMAGENET_LITE_MEAN, IMAGENET_LITE_STD)


class PatchFeatures(nn.Module):
    """Locally aggregated multi-layer descriptors at the finest chosen stride."""

    def __init__(self, backbone: EfficientNetLite0, layers: tuple[int, ...], neighbourhood: int):
        super().__init__()
        self.backbone = backbone
        self.layers = layers
        self.pool = nn.AvgPool2d(neighbourhood, stride=1, padding=neighbourhood // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.backbone.features(x, max(self.layers))
        maps = [self.pool(outs[i]) for i in self.layers]
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [
            F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]
        ]
        return torch.cat(maps, dim=1)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma**2))
    return k / k.sum()


class PatchCoreScorer(nn.Module):
    """image (N,3,H,W) -> anomaly_map (N,1,H,W), score (N,) — the exported graph."""

    bank: torch.Tensor  # registered buffers, declared for type checkers
    bank_sq: torch.Tensor
    kx: torch.Tensor
    ky: torch.Tensor

    def __init__(self, features: PatchFeatures, bank: torch.Tensor, image_size: int, sigma: float):
        super().__init__()
        self.features = features
        self.register_buffer("bank", bank)
        self.register_buffer("bank_sq", (bank**2).sum(dim=1))
        kernel = _gaussian_kernel(sigma)
        self.register_buffer("kx", kernel.view(1, 1, 1, -1))
        self.register_buffer("ky", kernel.view(1, 1, -1, 1))
        self.pad = kernel.numel() // 2
        self.image_size = image_size

    def patch_scores(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        n, d, h, w = f.shape
        f = f.permute(0, 2, 3, 1).reshape(n, h * w, d)
        d2 = (f**2).sum(-1, keepdim=True) - 2 * f @ self.bank.T + self.bank_sq
        nearest = d2.min(dim=-1).values.clamp_min(0).sqrt()
        return nearest.reshape(n, 1, h, w)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.patch_scores(image)
        m = F.interpolate(m, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        m = F.pad(m, (self.pad, self.pad, self.pad, self.pad), mode="replicate")
        m = F.conv2d(F.conv2d(m, self.kx), self.ky)
        return m, m.amax(dim=(1, 2, 3))


def greedy_coreset(candidates: torch.Tensor, size: int, projection_dim: int, seed: int) -> torch.Tensor:
    """Indices of an approximate k-centre coreset (PatchCore's greedy selection)."""
    n = candidates.shape[0]
    if n <= size:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(candidates.shape[1], projection_dim, generator=gen) / math.sqrt(projection_dim)
    z = candidates @ proj
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    min_d = ((z - z[chosen[0]]) ** 2).sum(1)
    for i in range(1, size):
        chosen[i] = int(torch.argmax(min_d))
        min_d = torch.minimum(min_d, ((z - z[chosen[i]]) ** 2).sum(1))
    return chosen


@torch.no_grad()
def fit_patchcore(
    images_bgr: Iterable[np.ndarray], settings: PatchCoreSettings, weights: str | None = None
) -> PatchCoreScorer:
    """Fit the memory bank on good images; memory stays bounded by ``max_candidates``."""
    torch.manual_seed(settings.seed)
    features = PatchFeatures(load_pretrained(weights), settings.layers, settings.neighbourhood).eval()
    images = list(images_bgr)
    if not images:
        raise ValueError("fit_patchcore needs at least one good image")
    per_image_cap = max(1, settings.max_candidates // len(images))
    rng = np.random.default_rng(settings.seed)
    chunks = []
    for start in range(0, len(images), settings.batch_size):
        batch = torch.from_numpy(
            to_model_input(images[start : start + settings.batch_size], settings.preprocessing)
        )
        f = features(batch)
        f = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
        for patches in f:
            keep = rng.choice(patches.shape[0], size=min(per_image_cap, patches.shape[0]), replace=False)
            chunks.append(patches[torch.from_numpy(np.sort(keep))])
    candidates = torch.cat(chunks)
    index = greedy_coreset(candidates, settings.bank_size, settings.projection_dim, settings.seed)
    bank = candidates[index].contiguous()
    log.info("memory bank: %d of %d candidate patches, dim %d", len(bank), len(candidates), bank.shape[1])
    return PatchCoreScorer(features, bank, settings.image_size, settings.blur_sigma).eval()
