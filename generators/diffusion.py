"""A small mask- and class-conditioned diffusion model that inpaints one defect into a good image.

diffusers style: the UNet and the scheduler are separate objects, the generator
is called with typed keyword arguments and returns a small output dataclass, and
every output is reproduced from its seed, steps and guidance.

The UNet sees 7 channels: the noisy crop (3), the crop with the defect area
blanked (3) and the mask (1); the defect class is a class embedding whose index
0 means "no class", so classifier-free guidance can push towards the class.
Only the mask's own pixels change (``Sampling.feather_paste`` blends over a
slightly wider band); the rest of the frame stays byte for byte the real good image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# concrete modules rather than the package's lazy names, so type checkers see the real classes
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from generators.crops import CropBox, crop_around, model_mask, paste_window, resize_square
from generators.masks import MaskSampler
from pipeline.errors import DatasetError, ModelContractError

KIND = "defect-inpainting"
CARD_FILE = "generator.json"
WEIGHTS_FILE = "unet/diffusion_pytorch_model.safetensors"
MASKS_FILE = "masks.npz"
CHECKED_FILES = (WEIGHTS_FILE, "unet/config.json", "scheduler/scheduler_config.json", MASKS_FILE)
UNCONDITIONAL = 0  # class-embedding index of "any defect": the guidance baseline


@dataclass(frozen=True, slots=True)
class UNetSettings:
    """Size of the denoiser; the defaults train in minutes on two CPU cores at 64 px."""

    image_size: int = 64
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention_in_last_block: bool = True

    def build(self, n_classes: int) -> UNet2DModel:
        n = len(self.block_out_channels)
        attention = self.attention_in_last_block
        down = ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D" if attention else "DownBlock2D"]
        up = ["AttnUpBlock2D" if attention else "UpBlock2D"] + ["UpBlock2D"] * (n - 1)
        return UNet2DModel(
            sample_size=self.image_size,
            in_channels=7,
            out_channels=3,
            layers_per_block=self.layers_per_block,
            block_out_channels=self.block_out_channels,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=self.norm_num_groups,
            num_class_embeds=n_classes + 1,
        )


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")


@dataclass(frozen=True, slots=True)
class GeneratorCard:
    """What is saved next to the weights: identity, classes, defaults, training provenance, file digests."""

    name: str
    version: str
    classes: tuple[str, ...]
    image_size: int
    default_steps: int = 25
    default_guidance: float = 2.0
    default_match_class: bool = True  # ``Sampling.match_class`` when the caller gives no sampling
    training: dict[str, Any] = field(default_factory=dict)
    class_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    file_sha256: dict[str, str] = field(default_factory=dict)

    def class_index(self, defect_class: str) -> int:
        if defect_class not in self.classes:
            raise DatasetError(
                f"generator {self.name} {self.version} has no class {defect_class!r} "
                f"(no real examples when it was fitted); classes: {list(self.classes)}"
            )
        return self.classes.index(defect_class) + 1


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a window is sampled besides steps and guidance.

    ``resample_known``: after every denoising step, the pixels outside the mask are replaced by the real
    window noised to the same level (RePaint, Lugmayr et al. 2022), so the defect is denoised against the
    real surroundings rather than the model's own guess of them.
    ``match_class``: the generated pixels are shifted and scaled so that their grey level sits at the
    class's offset from the surroundings and their spread is the class's contrast, both drawn (from the
    seed) from the real defects' statistics on the card; a card without them leaves the pixels as they are.
    ``match_grain``: where the window was upscaled from the model's size (the defect's window is larger),
    the pasted pixels get the fine detail (sensor grain, grinding streaks) that upscaling cannot produce:
    16 px patches of the real surface's high-pass residual, drawn (from the seed) from outside the mask
    only (``crops.add_surface_grain``); a window at the model's size is left as it is.
    ``feather_paste`` (off by default): the window is blended in over the mask dilated by 1/64 of its side
    and feathered; without, only the mask's own pixels are replaced, so the real surface right around the
    mask is kept and the mask is exactly the set of changed pixels.
    """

    resample_known: bool = True
    match_class: bool = True
    match_grain: bool = True
    feather_paste: bool = False


@dataclass(frozen=True, slots=True)
class InpaintingOutput:
    """One generated image (BGR uint8, full frame) and the defect mask that is its ground truth."""

    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    defect_class: str
    seed: int
    num_inference_steps: int
    guidance: float
    crop: CropBox


def to_tensor(image_bgr: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 BGR -> 3×H×W float in [-1, 1] (RGB order)."""
    rgb = np.ascontiguousarray(image_bgr[..., ::-1], dtype=np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1) / 127.5 - 1.0


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    rgb = ((tensor.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def model_input(noisy: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The UNet's 7 input channels; ``mask`` is N×1×H×W with 1 where the defect goes."""
    return torch.cat([noisy, known * (1.0 - mask), mask], dim=1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CardNamed:
    """Generators are named and versioned by the card saved with their weights."""

    card: Any

    @property
    def name(self) -> str:
        return str(self.card.name)

    @property
    def version(self) -> str:
        return str(self.card.version)


class DefectInpaintingGenerator(CardNamed):
    """Inpaints a defect of a known class into a real good image, inside a given mask."""

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler, masks: MaskSampler, card: GeneratorCard):
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.masks = masks
        self.card = card

    def class_stats(self, defect_class: str) -> dict[str, float] | None:
        """Grey level and contrast of the real defects of a class (for the pre-screen's realism)."""
        return self.card.class_stats.get(defect_class)

    def draw_mask(self, defect_class: str, shape: tuple[int, int], seed: int) -> np.ndarray:
        self.card.class_index(defect_class)
        return self.masks.draw(defect_class, shape, seed)

    def default_sampling(self) -> Sampling:
        """The sampling this model was fitted for (its card says whether to match class statistics)."""
        return Sampling(match_class=self.card.default_match_class)

    @torch.no_grad()
    def __call__(
        self,
        *,
        image: np.ndarray,
        mask: np.ndarray,
        defect_class: str,
        seed: int,
        num_inference_steps: int | None = None,
        guidance: float | None = None,
        sampling: Sampling | None = None,
    ) -> InpaintingOutput:
        """Inpaint one defect of ``defect_class`` into ``image`` (any image: a good frame, or a defective
        one whose defect is to be replaced) inside ``mask``; pixels away from the mask stay unchanged."""
        sampling = sampling or self.default_sampling()
        steps = num_inference_steps or self.card.default_steps
        scale = self.card.default_guidance if guidance is None else guidance
        label = self.card.class_index(defect_class)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected H×W×3 uint8, got {image.dtype} {image.shape}")
        if mask.shape != image.shape[:2] or not mask.any():
            raise ValueError(f"mask: expected a non-empty {image.shape[:2]} mask, got {mask.shape}")
        size = self.card.image_size
        crop = crop_around(mask, size)
        known = to_tensor(resize_square(crop.cut(image), size))[None]
        mask_t = torch.from_numpy(model_mask(crop.cut(mask), size))[None, None]
        sample = self._denoise(known, mask_t, label, steps, scale, seed, sampling.resample_known)
        stats = self.class_stats(defect_class) or {}
        if sampling.match_class and "offset" in stats:
            sample = _match_class(sample, known, mask_t, stats, np.random.default_rng(seed))
        sample = sample * mask_t + known * (1.0 - mask_t)
        grain = np.random.default_rng(seed) if sampling.match_grain else None
        return InpaintingOutput(
            image=paste_window(
                image, from_tensor(sample[0]), mask, crop, grain, feather=sampling.feather_paste
            ),
            mask=mask.astype(bool),
            defect_class=defect_class,
            seed=seed,
            num_inference_steps=steps,
            guidance=scale,
            crop=crop,
        )

    def _denoise(
        self,
        known: torch.Tensor,
        mask: torch.Tensor,
        label: int,
        steps: int,
        guidance: float,
        seed: int,
        resample_known: bool = False,
    ) -> torch.Tensor:
        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps)
        noise_source = torch.Generator().manual_seed(seed)
        sample = torch.randn(known.shape, generator=noise_source)
        guided = guidance != 1.0
        labels = torch.tensor([label, UNCONDITIONAL] if guided else [label])
        conditioning = model_input(torch.zeros_like(known), known, mask).repeat(len(labels), 1, 1, 1)
        for t in scheduler.timesteps:
            inputs = conditioning.clone()
            inputs[:, :3] = sample
            noise = self.unet(inputs, t, class_labels=labels).sample
            if guided:
                conditional, unconditional = noise.chunk(2)
                noise = unconditional + guidance * (conditional - unconditional)
            sample = scheduler.step(noise, t, sample).prev_sample
            if resample_known:
                previous = int(t) - scheduler.config["num_train_timesteps"] // steps
                real = known
                if previous >= 0:
                    fresh = torch.randn(known.shape, generator=noise_source)
                    real = scheduler.add_noise(known, fresh, torch.tensor([previous]))
                sample = sample * mask + real * (1.0 - mask)
        return sample

    def save(self, folder: Path) -> Path:
        """Weights, scheduler, mask statistics and ``generator.json`` (with every file's sha256)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(folder / "scheduler")
        self.masks.save(folder / MASKS_FILE)
        digests = {name: _sha256(folder / name) for name in CHECKED_FILES}
        card = {**asdict(self.card), "kind": KIND, "file_sha256": digests}
        (folder / CARD_FILE).write_text(json.dumps(card, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> DefectInpaintingGenerator:
        """Load a saved generator; a missing, corrupt or replaced file is refused, naming it."""
        card = read_card(folder)
        for name, expected in card.file_sha256.items():
            path = folder / name
            if not path.is_file():
                raise ModelContractError(f"{path}: generator file missing")
            if _sha256(path) != expected:
                raise ModelContractError(f"{path}: sha256 differs from {CARD_FILE} (corrupt or replaced)")
        try:
            unet = UNet2DModel.from_pretrained(folder / "unet", low_cpu_mem_usage=False)
            scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelContractError(f"{folder}: cannot load the generator weights: {exc}") from exc
        return cls(unet, scheduler, MaskSampler.load(folder / MASKS_FILE), card)


def _match_class(
    sample: torch.Tensor,
    known: torch.Tensor,
    mask: torch.Tensor,
    stats: dict[str, float],
    rng: np.random.Generator,
) -> torch.Tensor:
    """Generated pixels (inside the mask) moved to a grey level of ring + offset and a spread of the
    class's contrast; statistics are grey levels 0-255, the sample is [-1, 1]."""
    ring = torch.nn.functional.max_pool2d(mask, 2 * 3 + 1, stride=1, padding=3) - mask
    inside = mask.expand_as(sample) > 0
    if ring.sum() < 1 or inside.sum() < 1:
        return sample
    surface = float((known * ring).sum() / (ring.sum() * known.shape[1]))
    offset = rng.normal(stats["offset"], stats.get("offset_spread", 0.0)) / 127.5
    # a draw in the low tail would give a flat patch, which no real defect is: at least a quarter of the mean
    contrast = (
        max(stats["contrast"] / 4, rng.normal(stats["contrast"], stats["contrast_spread"] - 1.0)) / 127.5
    )
    values = sample[inside]
    spread = float(values.std()) if values.numel() > 1 else 0.0
    scale = contrast / spread if spread > 1e-3 else 1.0
    moved = sample.clone()
    moved[inside] = (values - values.mean()) * scale + surface + offset
    return moved


def read_card(folder: Path) -> GeneratorCard:
    path = folder / CARD_FILE
    try:
        data = json.loads(path.read_text())
        if data.pop("kind", None) != KIND:
            raise ValueError(f"kind is not {KIND!r}")
        data["classes"] = tuple(data["classes"])
        card = GeneratorCard(**data)
    except FileNotFoundError as exc:
        raise ModelContractError(f"{path}: not found; is {folder} a saved generator?") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelContractError(f"{path}: not a valid generator card ({exc})") from exc
    if set(card.file_sha256) != set(CHECKED_FILES):
        raise ModelContractError(
            f"{path}: expected digests of {list(CHECKED_FILES)}, got {sorted(card.file_sha256)}"
        )
    return card
