"""Optional: a Stable-Diffusion-style inpainting pipeline from a LOCAL folder, behind the generator interface.

Off unless a user registers one: ``qcflow fit generator --sd-pipeline DIR`` learns
the mask statistics from a dataset and writes ``generator.json`` (kind
``sd-inpainting``, with a prompt per class) into a copy-free wrapper folder.
Loading never downloads: ``local_files_only=True``. Windows, masks and pasting
follow the same rules as the small in-house model (``generators.crops``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import (
    StableDiffusionInpaintPipeline,
)
from PIL import Image

from generators.crops import crop_around, paste_window, resize_square
from generators.diffusion import CARD_FILE, MASKS_FILE, CardNamed, InpaintingOutput
from generators.masks import MaskSampler
from pipeline.datasets import digest_files
from pipeline.errors import DatasetError, ModelContractError
from pipeline.versions import version_folder

KIND = "sd-inpainting"


@dataclass(frozen=True, slots=True)
class SDInpaintingCard:
    name: str
    version: str
    pipeline_dir: str
    prompts: dict[str, str]  # defect class -> prompt
    image_size: int = 512
    default_steps: int = 30
    default_guidance: float = 7.5

    @property
    def classes(self) -> list[str]:
        return sorted(self.prompts)


def write_sd_card(folder: Path, card: SDInpaintingCard, masks: MaskSampler) -> Path:
    """Wrap a local pipeline folder: mask statistics and ``generator.json`` go into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    masks.save(folder / MASKS_FILE)
    model_index = Path(card.pipeline_dir) / "model_index.json"
    if not model_index.is_file():
        raise ModelContractError(f"{model_index}: not found; expected a local diffusers inpainting pipeline")
    digests = {MASKS_FILE: _sha256(folder / MASKS_FILE), "model_index.json": _sha256(model_index)}
    data = {**asdict(card), "kind": KIND, "classes": card.classes, "file_sha256": digests}
    data["training"] = {"data_digest": digests[MASKS_FILE]}
    (folder / CARD_FILE).write_text(json.dumps(data, indent=2))
    return folder


def wrap_local_pipeline(
    pipeline_dir: Path,
    data: Path,
    name: str,
    models_root: Path,
    prompts: dict[str, str],
    image_size: int = 512,
) -> Path:
    """Learn mask statistics from ``data``'s real masks and wrap ``pipeline_dir`` as generator ``name``."""
    from generators.training.fit_generator import load_defect_examples, mask_sampler

    examples, files = load_defect_examples(data)
    sampler = mask_sampler(examples)
    class_prompts = {c: prompts.get(c, f"a {c.replace('_', ' ')} defect") for c in sampler.classes}
    with version_folder(models_root, name, digest_files(files)) as new:
        card = SDInpaintingCard(name, new.version, str(pipeline_dir.resolve()), class_prompts, image_size)
        write_sd_card(new.folder, card, sampler)
    return new.final


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StableDiffusionInpaintingGenerator(CardNamed):
    """Prompted inpainting of one defect into a real good image, inside a given mask."""

    def __init__(self, pipeline: StableDiffusionInpaintPipeline, masks: MaskSampler, card: SDInpaintingCard):
        self.pipeline = pipeline
        self.masks = masks
        self.card = card

    def class_stats(self, defect_class: str) -> dict[str, float] | None:
        return None  # no real-defect statistics for a pipeline fitted elsewhere

    def draw_mask(self, defect_class: str, shape: tuple[int, int], seed: int) -> np.ndarray:
        self._prompt(defect_class)
        return self.masks.draw(defect_class, shape, seed)

    def _prompt(self, defect_class: str) -> str:
        if defect_class not in self.card.prompts:
            raise DatasetError(
                f"generator {self.name} has no prompt for {defect_class!r}; classes: {self.card.classes}"
            )
        return self.card.prompts[defect_class]

    def __call__(
        self,
        *,
        image: np.ndarray,
        mask: np.ndarray,
        defect_class: str,
        seed: int,
        num_inference_steps: int | None = None,
        guidance: float | None = None,
    ) -> InpaintingOutput:
        steps = num_inference_steps or self.card.default_steps
        scale = self.card.default_guidance if guidance is None else guidance
        prompt = self._prompt(defect_class)
        if mask.shape != image.shape[:2] or not mask.any():
            raise ValueError(f"mask: expected a non-empty {image.shape[:2]} mask, got {mask.shape}")
        size = self.card.image_size
        crop = crop_around(mask, size)
        window = Image.fromarray(np.ascontiguousarray(resize_square(crop.cut(image), size)[..., ::-1]))
        small_mask = resize_square(crop.cut(mask).astype(np.uint8) * 255, size, nearest=True)
        images, _ = self.pipeline(
            prompt=prompt,
            image=window,
            mask_image=Image.fromarray(small_mask),
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=scale,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
            return_dict=False,
        )
        rgb = np.clip(np.asarray(images[0], dtype=np.float32), 0.0, 1.0)
        generated = np.ascontiguousarray((rgb * 255).round().astype(np.uint8)[..., ::-1])
        return InpaintingOutput(
            image=paste_window(image, generated, mask, crop),
            mask=mask.astype(bool),
            defect_class=defect_class,
            seed=seed,
            num_inference_steps=steps,
            guidance=scale,
            crop=crop,
        )

    @classmethod
    def load(cls, folder: Path) -> StableDiffusionInpaintingGenerator:
        path = folder / CARD_FILE
        try:
            data = json.loads(path.read_text())
            if data.get("kind") != KIND:
                raise ValueError(f"kind is not {KIND!r}")
            fields = SDInpaintingCard.__dataclass_fields__
            card = SDInpaintingCard(**{k: v for k, v in data.items() if k in fields})
        except (OSError, ValueError, TypeError) as exc:
            raise ModelContractError(f"{path}: not a valid {KIND} generator card ({exc})") from exc
        if _sha256(folder / MASKS_FILE) != data["file_sha256"][MASKS_FILE]:
            raise ModelContractError(f"{folder / MASKS_FILE}: sha256 differs from {CARD_FILE}")
        try:
            pipeline = StableDiffusionInpaintPipeline.from_pretrained(
                card.pipeline_dir, local_files_only=True, safety_checker=None, requires_safety_checker=False
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelContractError(
                f"{card.pipeline_dir}: cannot load the inpainting pipeline: {exc}"
            ) from exc
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline, MaskSampler.load(folder / MASKS_FILE), card)
