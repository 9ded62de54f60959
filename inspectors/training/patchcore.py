"""PatchCore-style anomaly model: fit in torch, score as one ONNX graph.

Mid-level features of a pretrained backbone (by default EfficientNet-Lite0,
blocks at 1/8 and 1/16 resolution; see ``backbones.py`` for the others),
averaged over a 3×3 neighbourhood, form patch descriptors. With ``edge_padding``
the input is first extended by repeating its border pixels and the maps are cropped
back, so patches at the frame's edge are described from image content rather than
from the convolutions' zero padding. A greedy k-centre
coreset of the good parts' descriptors is the memory bank; a patch's anomaly is
its distance to the nearest bank entry. With ``coarse_window`` a second descriptor,
the patch descriptors averaged over a large window, is scored the same way against
its own bank and added to the map, so that large, faint defects (a band of uneven
texture across a part) stand out as a whole; the coarse map may have its own smoothing, and may be
taken relative to the image (a share of its median coarse distance taken off). The whole
scoring path - features, nearest neighbour, upsampling and smoothing - is one ONNX graph, so
inspection needs no torch.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inspectors.preprocess import Preprocessing, to_model_input
from inspectors.training.backbones import Backbone, OnnxBackbone, load_backbone
from pipeline.config import coarse_map_problem
from pipeline.errors import ConfigError, ModelContractError
from pipeline.torch_device import torch_device

log = logging.getLogger(__name__)

OPSET = 17


@dataclass(frozen=True, slots=True)
class PatchCoreSettings:
    backbone: str = "lite0"  # lite0 | lite1 | lite2 | onnx:PATH | hf:DIR (backbones.load_backbone)
    image_size: int | None = None  # None: the backbone's own (Lite0 224, Lite1 240, Lite2 260)
    layers: tuple[int | str, ...] | None = None  # None: the backbone's default (strides 8 and 16)
    neighbourhood: int = 3
    edge_padding: int = 0  # input pixels repeated on each side; a multiple of the coarsest stride
    bank_size: int = 4096
    max_candidates: int = 200_000  # patches sampled before the coreset: bounds fit memory
    projection_dim: int = 64  # coreset selection runs on a random projection (speed)
    blur_sigma: float = 4.0
    aspect: str = "stretch"  # or "pad": images mirrored out to a square first (Preprocessing.aspect)
    # the coarse descriptor's window as a share of the feature map's side (0: no coarse descriptor); its
    # bank holds a quarter of bank_size, and its distances, scaled to the fine ones' spread, count this much
    coarse_window: float = 0.0
    coarse_weight: float = 0.5
    coarse_sigma: float | None = None  # the coarse map's smoothing (None: blur_sigma)
    # the share of each image's median coarse distance taken off its coarse map: a part that differs from
    # the fitted ones all over then lights up where it differs most rather than everywhere
    coarse_relative: float = 0.0
    # the image score from the fine map alone; the map keeps the coarse one (scaled at calibration)
    fine_score: bool = False
    batch_size: int = 16
    device: str = "cpu"  # torch device for features and coreset ("cuda" on a GPU machine); saved for CPU
    seed: int = 0

    def __post_init__(self) -> None:
        problem = coarse_map_problem(
            self.coarse_window, self.coarse_sigma, self.coarse_relative, self.fine_score, self.aspect
        )
        if problem:
            raise ConfigError(problem)


def _edge_cells(backbone: Backbone, padding: int) -> tuple[int, ...]:
    """Map cells to crop on each side so that a padded input's maps cover the frame alone."""
    if padding == 0:
        return tuple(0 for _ in backbone.map_sizes)
    if not backbone.traceable:
        raise ModelContractError(
            f"edge_padding={padding}: backbone {backbone.name} is an ONNX graph with a fixed input; "
            "edge padding needs a torch backbone (lite0-2 or hf:DIR)"
        )
    cells = tuple(padding / s for s in backbone.strides)
    if padding < 0 or any(c != int(c) for c in cells):
        raise ModelContractError(
            f"edge_padding={padding}: must be a non-negative multiple of every map stride "
            f"{[round(s, 3) for s in backbone.strides]} of backbone {backbone.name}"
        )
    side = backbone.image_size + 2 * padding
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 3, side, side))
    for m, c, hw in zip(maps, cells, backbone.map_sizes, strict=True):
        if (m.shape[-2] - 2 * int(c), m.shape[-1] - 2 * int(c)) != hw:
            raise ModelContractError(
                f"edge_padding={padding}: backbone {backbone.name} gives {tuple(m.shape[-2:])} maps "
                f"at {side} px, which do not crop back to {hw}"
            )
    return tuple(int(c) for c in cells)


class PatchFeatures(nn.Module):
    """Locally aggregated multi-layer descriptors at the finest chosen stride."""

    def __init__(self, backbone: Backbone, neighbourhood: int, edge_padding: int = 0):
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AvgPool2d(neighbourhood, stride=1, padding=neighbourhood // 2)
        self.edge_padding = edge_padding
        self.edge_cells = _edge_cells(backbone, edge_padding)
        # sizes are fixed by the input size: coarser maps are upsampled to the finest one
        self.grid = max(backbone.map_sizes, key=lambda hw: hw[0] * hw[1])
        self.upsample = [hw != self.grid for hw in backbone.map_sizes]

    def aggregate(self, feature_maps: list[torch.Tensor]) -> torch.Tensor:
        maps = [self.pool(m) for m in feature_maps]
        maps = [
            m[..., c : m.shape[-2] - c, c : m.shape[-1] - c] if c else m
            for m, c in zip(maps, self.edge_cells, strict=True)
        ]
        maps = [
            F.interpolate(m, size=self.grid, mode="bilinear", align_corners=False) if up else m
            for m, up in zip(maps, self.upsample, strict=True)
        ]
        return torch.cat(maps, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.edge_padding:
            x = F.pad(x, (self.edge_padding,) * 4, mode="replicate")
        return self.aggregate(self.backbone(x))


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma**2))
    return k / k.sum()


def smoothing_matrix(cells: int, size: int, sigma: float) -> torch.Tensor:
    """size × cells: linear upsampling of ``cells`` values to ``size`` (``align_corners=False``), then a
    Gaussian of ``sigma`` with replicated edges, as one matrix.

    Both steps are linear and act on rows and columns separately, so a map's bilinear upsampling and
    separable smoothing is ``Y @ map @ X.T``: two small products instead of a full-size resize and
    two convolutions over it (in ONNX Runtime 0.6 ms an image at 224 px, 1.1 ms in torch).
    """
    basis = torch.eye(cells).unsqueeze(1)  # each cell alone, as a 1-channel line
    lines = F.interpolate(basis, size=size, mode="linear", align_corners=False)
    kernel = _gaussian_kernel(sigma)
    pad = kernel.numel() // 2
    smoothed = F.conv1d(F.pad(lines, (pad, pad), mode="replicate"), kernel.view(1, 1, -1))
    return smoothed[:, 0].T.contiguous()


def coarse_cells(window: float, grid: tuple[int, int]) -> int:
    """The coarse descriptor's window in feature-map cells: odd (so the map keeps its size), at least 3."""
    return max(3, 2 * round(window * min(grid) / 2) + 1)


def coarse_descriptors(f: torch.Tensor, cells: int) -> torch.Tensor:
    """Each patch's descriptor averaged over the ``cells`` × ``cells`` window around it (N×D×h×w)."""
    return F.avg_pool2d(f, cells, stride=1, padding=cells // 2, count_include_pad=False)


def image_median(m: torch.Tensor) -> torch.Tensor:
    """Each map's median (the lower one for an even count, as ``torch.median``): N×1×h×w -> N×1×1×1.

    A TopK, since ONNX has no median operator.
    """
    flat = m.flatten(1)
    return torch.topk(flat, flat.shape[1] // 2 + 1, dim=1).values[:, -1:].reshape(-1, 1, 1, 1)


@dataclass(frozen=True)
class CoarseBank:
    """The coarse descriptor's memory bank and how its distances join the fine map."""

    cells: int
    bank: torch.Tensor
    weight: float  # the chosen coarse_weight times the fine / coarse spread of distances
    sigma: float  # the coarse map's smoothing
    relative: float = 0.0  # share of each image's median coarse distance taken off its coarse map
    in_score: bool = True  # False: the image score is the fine map's maximum


class PatchCoreScorer(nn.Module):
    """image (N,3,H,W) -> anomaly_map (N,1,H,W), score (N,) — the exported graph."""

    bank: torch.Tensor  # registered buffers, declared for type checkers
    bank_sq: torch.Tensor
    coarse_bank: torch.Tensor
    coarse_bank_sq: torch.Tensor
    smooth_y: torch.Tensor
    smooth_x: torch.Tensor
    coarse_smooth_y: torch.Tensor
    coarse_smooth_x: torch.Tensor

    def __init__(
        self,
        features: PatchFeatures,
        bank: torch.Tensor,
        image_size: int,
        sigma: float,
        aspect: str = "stretch",
        coarse: CoarseBank | None = None,
    ):
        super().__init__()
        self.aspect = aspect
        self.features = features
        self.register_buffer("bank", bank)
        self.register_buffer("bank_sq", (bank**2).sum(dim=1))
        self.coarse = coarse
        rows, columns = features.grid
        self.register_buffer("smooth_y", smoothing_matrix(rows, image_size, sigma))
        self.register_buffer("smooth_x", smoothing_matrix(columns, image_size, sigma))
        if coarse is not None:
            self.register_buffer("coarse_bank", coarse.bank)
            self.register_buffer("coarse_bank_sq", (coarse.bank**2).sum(dim=1))
            self.register_buffer("coarse_smooth_y", smoothing_matrix(rows, image_size, coarse.sigma))
            self.register_buffer("coarse_smooth_x", smoothing_matrix(columns, image_size, coarse.sigma))
        self.image_size = image_size

    @property
    def backbone(self) -> Backbone:
        return self.features.backbone

    @property
    def preprocessing(self) -> Preprocessing:
        return replace(self.backbone.preprocessing, aspect=self.aspect)

    def coarse_scores(self, f: torch.Tensor) -> torch.Tensor:
        """The coarse descriptors' distances, less the chosen share of each image's median, weighted."""
        assert self.coarse is not None
        c = nearest_distances(coarse_descriptors(f, self.coarse.cells), self.coarse_bank, self.coarse_bank_sq)
        if self.coarse.relative:
            c = c - self.coarse.relative * image_median(c)
        return self.coarse.weight * c

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.score_features(self.features(image))

    def score_feature_maps(self, *feature_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scoring head alone: the backbone's maps -> anomaly map and score."""
        return self.score_features(self.features.aggregate(list(feature_maps)))

    def score_features(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # each map upsampled to the input and smoothed
        fine = self.smooth_y @ nearest_distances(f, self.bank, self.bank_sq) @ self.smooth_x.T
        if self.coarse is None:
            return fine, fine.amax(dim=(1, 2, 3))
        m = fine + self.coarse_smooth_y @ self.coarse_scores(f) @ self.coarse_smooth_x.T
        return m, (m if self.coarse.in_score else fine).amax(dim=(1, 2, 3))


def nearest_distances(f: torch.Tensor, bank: torch.Tensor, bank_sq: torch.Tensor) -> torch.Tensor:
    """Each patch's distance to its nearest bank entry: N×D×h×w descriptors -> N×1×h×w."""
    n, d, h, w = f.shape
    f = f.permute(0, 2, 3, 1).reshape(n * h * w, d)
    # |f - b|² = |f|² + (|b|² - 2 f·b): the bracket is one GEMM with a bias (ONNX Gemm), and |f|²,
    # the same for every b, is added after the minimum rather than to every distance
    partial = torch.addmm(bank_sq, f, bank.T, alpha=-2.0)
    d2 = partial.min(dim=-1).values + (f**2).sum(-1)
    return d2.clamp_min(0).sqrt().reshape(n, 1, h, w)


def greedy_coreset(candidates: torch.Tensor, size: int, projection_dim: int, seed: int) -> torch.Tensor:
    """Indices of an approximate k-centre coreset (PatchCore's greedy selection)."""
    n = candidates.shape[0]
    if n <= size:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same picks whatever the device
    proj = torch.randn(candidates.shape[1], projection_dim, generator=gen) / math.sqrt(projection_dim)
    z = candidates @ proj.to(candidates.device)
    sq_norms = (z * z).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    min_d = torch.full((n,), math.inf, device=z.device)
    d = torch.empty(n, device=z.device)
    pick = int(torch.randint(n, (1,), generator=gen))
    for i in range(size):
        chosen[i] = pick
        # |z - c|² = |z|² - 2 z·c + |c|²: one matrix-vector product, no N×D temporary per step
        torch.mv(z, z[pick], out=d)
        d.mul_(-2).add_(sq_norms).add_(sq_norms[pick])
        torch.minimum(min_d, d, out=min_d)
        pick = int(torch.argmax(min_d))
    return chosen


@torch.no_grad()
def fit_patchcore(images_bgr: Iterable[np.ndarray], settings: PatchCoreSettings) -> PatchCoreScorer:
    """Fit the memory bank on good images; memory stays bounded by ``max_candidates``."""
    torch.manual_seed(settings.seed)
    if settings.device != "cpu" and settings.backbone.startswith("onnx:"):
        raise ConfigError(
            f"device {settings.device!r}: backbone {settings.backbone} runs in ONNX Runtime; fit it on cpu"
        )
    device = torch_device(settings.device)
    backbone = load_backbone(settings.backbone, settings.layers, settings.image_size)
    prep = replace(backbone.preprocessing, aspect=settings.aspect)
    features = PatchFeatures(backbone, settings.neighbourhood, settings.edge_padding).eval().to(device)
    images = list(images_bgr)
    if not images:
        raise ValueError("fit_patchcore needs at least one good image")
    per_image_cap = max(1, settings.max_candidates // len(images))
    rng = np.random.default_rng(settings.seed)
    cells = coarse_cells(settings.coarse_window, features.grid) if settings.coarse_window else 0
    chunks: list[torch.Tensor] = []
    coarse_chunks: list[torch.Tensor] = []
    for start in range(0, len(images), settings.batch_size):
        batch = torch.from_numpy(to_model_input(images[start : start + settings.batch_size], prep))
        f = features(batch.to(device))
        patches_per_image = f.shape[2] * f.shape[3]
        size = min(per_image_cap, patches_per_image)
        keeps = [
            torch.from_numpy(np.sort(rng.choice(patches_per_image, size=size, replace=False))) for _ in f
        ]
        # the same patch positions for the fine and (when chosen) the coarse descriptors
        described = [(f, chunks)] + ([(coarse_descriptors(f, cells), coarse_chunks)] if cells else [])
        for maps, out in described:
            flat = maps.permute(0, 2, 3, 1).reshape(maps.shape[0], -1, maps.shape[1])
            out.extend(patches[keep.to(device)] for patches, keep in zip(flat, keeps, strict=True))
    candidates = torch.cat(chunks)
    bank = _coreset_bank(candidates, settings.bank_size, settings)
    coarse = None
    if cells:
        coarse_candidates = torch.cat(coarse_chunks)
        coarse_bank = _coreset_bank(coarse_candidates, max(1, settings.bank_size // 4), settings)
        spread = _distance_spread(candidates, bank, settings.seed) / _distance_spread(
            coarse_candidates, coarse_bank, settings.seed
        )
        sigma = settings.blur_sigma if settings.coarse_sigma is None else settings.coarse_sigma
        coarse = CoarseBank(
            cells,
            coarse_bank,
            settings.coarse_weight * spread,
            sigma,
            settings.coarse_relative,
            in_score=not settings.fine_score,
        )
        log.info(
            "coarse descriptor: %d-cell window, bank %d, weight %.3f, sigma %.1f, relative %.2f",
            cells,
            len(coarse_bank),
            coarse.weight,
            sigma,
            coarse.relative,
        )
    return PatchCoreScorer(
        features.cpu(), bank, backbone.image_size, settings.blur_sigma, settings.aspect, coarse
    ).eval()


def _coreset_bank(candidates: torch.Tensor, size: int, settings: PatchCoreSettings) -> torch.Tensor:
    index = greedy_coreset(candidates, size, settings.projection_dim, settings.seed)
    bank = candidates[index.to(candidates.device)].contiguous().cpu()
    log.info("memory bank: %d of %d candidate patches, dim %d", len(bank), len(candidates), bank.shape[1])
    return bank


def _distance_spread(candidates: torch.Tensor, bank: torch.Tensor, seed: int, sample: int = 4096) -> float:
    """Standard deviation of good patches' nearest-bank distances (a sample of the candidates)."""
    gen = torch.Generator().manual_seed(seed + 1)
    picked = candidates[torch.randperm(len(candidates), generator=gen)[:sample].to(candidates.device)].cpu()
    grid = picked.T.reshape(1, picked.shape[1], 1, -1)  # as one row of patches
    distances = nearest_distances(grid, bank, (bank**2).sum(dim=1))
    return max(float(distances.std()), 1e-12)


class _ScoringHead(nn.Module):
    """The scorer without its backbone: what is appended to an ONNX extractor's graph."""

    def __init__(self, scorer: PatchCoreScorer) -> None:
        super().__init__()
        self.scorer = scorer

    def forward(self, *feature_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scorer.score_feature_maps(*feature_maps)


def _torch_export(
    module: nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], opset: int, path: Path
) -> None:
    with warnings.catch_warnings():
        # The exporter notes each strided Slice it leaves unfolded: harmless, and noise in the
        # demo's output. The exported graph is checked against torch right after (parity).
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=inputs,
            output_names=["anomaly_map", "score"],
            dynamic_axes={name: {0: "batch"} for name in [*inputs, "anomaly_map", "score"]},
            opset_version=opset,
            dynamo=False,
        )


@torch.no_grad()
def export_onnx(scorer: PatchCoreScorer, path: Path) -> None:
    """``image`` -> ``anomaly_map``, ``score`` as one ONNX file.

    A torch backbone is traced with the rest; an ONNX extractor's own graph is
    kept and the traced scoring head appended to it.
    """
    size = scorer.image_size
    backbone = scorer.backbone
    if not isinstance(backbone, OnnxBackbone):
        _torch_export(scorer, (torch.zeros(1, 3, size, size),), ["image"], OPSET, path)
        return
    import onnx
    from onnx import version_converter

    opset = backbone.opset()  # >= MIN_EXTRACTOR_OPSET, checked when it was loaded
    maps = backbone(torch.zeros(1, 3, size, size))
    names = [f"features_{i}" for i in range(len(maps))]
    head_path = path.with_name(path.name + ".head")
    try:
        _torch_export(_ScoringHead(scorer), tuple(maps), names, min(opset, OPSET), head_path)
        head = onnx.load(str(head_path))
    finally:
        head_path.unlink(missing_ok=True)
    if opset > OPSET:
        head = version_converter.convert_version(head, opset)
    onnx.save(backbone.compose_with_head(head, names), str(path))
