"""The optional Stable-Diffusion-style generator: a tiny random-init local pipeline, same interface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from generators.masks import MaskSampler, template_from_mask
from generators.sd_inpainting import (
    SDInpaintingCard,
    StableDiffusionInpaintingGenerator,
    StableDiffusionInpaintPipeline,
    write_sd_card,
)
from pipeline.errors import DatasetError, ModelContractError
from pipeline.simulate import render_part
from tests.generators.conftest import SIM


def _tiny_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    """A CLIP tokenizer whose vocabulary is a few letters: every word is known by its characters."""
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["<|startoftext|>", "<|endoftext|>", *letters, *(f"{c}</w>" for c in letters)]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


@pytest.fixture(scope="module")
def sd_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = tmp_path_factory.mktemp("sd")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=9,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
    )
    text = CLIPTextModel(
        CLIPTextConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                       vocab_size=60, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16)
    )  # fmt: skip
    # Any: diffusers' type hints want the full-size component classes and a safety checker
    components: dict[str, Any] = {"vae": vae, "text_encoder": text, "tokenizer": _tiny_tokenizer(folder),
                                  "unet": unet, "scheduler": DDIMScheduler(steps_offset=1),
                                  "safety_checker": None, "feature_extractor": None}  # fmt: skip
    pipeline = StableDiffusionInpaintPipeline(**components, requires_safety_checker=False)
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


@pytest.fixture(scope="module")
def sd_generator_dir(sd_pipeline_dir: Path) -> Path:
    mask = np.zeros((96, 96), bool)
    mask[40:50, 30:60] = True
    sampler = MaskSampler({"scratch": [template_from_mask(mask, "scratch-0")]})
    card = SDInpaintingCard("tiny-sd", "v1", str(sd_pipeline_dir), {"scratch": "a scratch"}, image_size=32)
    return write_sd_card(sd_pipeline_dir.parent / "wrapper", card, sampler)


def test_same_interface_reproducible_and_only_the_mask_changes(sd_generator_dir: Path) -> None:
    generator = StableDiffusionInpaintingGenerator.load(sd_generator_dir)
    image = render_part(SIM, 800, None).image
    mask = generator.draw_mask("scratch", image.shape[:2], 1)
    run: dict[str, Any] = {
        "image": image,
        "mask": mask,
        "defect_class": "scratch",
        "num_inference_steps": 2,
        "guidance": 2.0,
    }
    first, again = generator(**run, seed=3), generator(**run, seed=3)
    assert np.array_equal(first.image, again.image) and first.image.shape == image.shape
    assert (first.num_inference_steps, first.guidance) == (2, 2.0)
    changed = (first.image != image).any(axis=2)
    assert changed.any() and not changed[first.crop.y + first.crop.side :].any()
    with pytest.raises(DatasetError, match="no prompt for 'pit'"):
        generator.draw_mask("pit", image.shape[:2], 0)


def test_a_folder_that_is_not_a_pipeline_is_refused(tmp_path: Path, sd_generator_dir: Path) -> None:
    sampler = MaskSampler.load(sd_generator_dir / "masks.npz")
    card = SDInpaintingCard("x", "v1", str(tmp_path / "nothing"), {"scratch": "a scratch"})
    with pytest.raises(ModelContractError, match="model_index.json: not found"):
        write_sd_card(tmp_path / "wrapper", card, sampler)


def test_wrapped_from_the_command_line_and_generates_pending(
    sd_pipeline_dir: Path, mvtec_dir: Path, good_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.generation import GenerationRequest, generate_defects, load_generator
    from pipeline.inspection import open_workspace
    from pipeline.review import get_synthetic
    from tests.generators.conftest import write_config

    data = ["--data-dir", str(tmp_path / "data")]
    args = [
        "--data",
        str(mvtec_dir),
        "--name",
        "sd",
        "--sd-pipeline",
        str(sd_pipeline_dir),
        "--image-size",
        "32",
    ]
    result = CliRunner().invoke(app, ["fit", "generator", *args, "--prompt", "pit=a small round pit", *data])
    assert result.exit_code == 0, result.output
    ws = open_workspace(tmp_path / "data", write_config(tmp_path / "config", enabled=True))
    generator = load_generator(ws, "sd")
    assert isinstance(generator, StableDiffusionInpaintingGenerator)
    assert generator.card.prompts == {"pit": "a small round pit", "scratch": "a scratch defect"}
    request = GenerationRequest("test", "pit", 1, base_images=str(good_dir), num_inference_steps=2)
    (image_id,) = generate_defects(ws, request, generator)
    with ws.session() as session:
        record = get_synthetic(session, image_id)
    assert (record.generator, record.status.value, record.conditioning["guidance"]) == ("sd", "pending", 7.5)
    ws.engine.dispose()
