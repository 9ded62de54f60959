"""A tiny MVTec-layout dataset of simulated parts with masks, and a tiny generator fitted on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from pipeline.inspection import Workspace
from pipeline.simulate import SimulationSettings, render_part

SIM = SimulationSettings(size=96, seed=11)
DEFECT_CLASSES = ("scratch", "pit")


def write_mvtec(root: Path, *, n_good: int = 4, n_defect: int = 3) -> Path:
    """train/good, test/good, test/<class> and ground_truth/<class>/<stem>_mask.png from the simulator."""
    index = 0
    for split, defect, count in [("train", None, n_good), ("test", None, 2)] + [
        ("test", c, n_defect) for c in DEFECT_CLASSES
    ]:
        folder = root / split / (defect or "good")
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            part = render_part(SIM, index, defect)
            cv2.imwrite(str(folder / f"{index:03d}.png"), part.image)
            if defect is not None:
                masks = root / "ground_truth" / defect
                masks.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(masks / f"{index:03d}_mask.png"), part.mask)
            index += 1
    return root


@pytest.fixture
def mvtec_dir(tmp_path: Path) -> Path:
    return write_mvtec(tmp_path / "parts")


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-ish generator: 2 UNet levels at 32 px, a few training steps (fast, not good)."""
    from generators.diffusion import UNetSettings
    from generators.training.fit_generator import GeneratorFitSettings, fit_generator

    root = tmp_path_factory.mktemp("gen")
    settings = GeneratorFitSettings(
        unet=UNetSettings(image_size=32, block_out_channels=(8, 16), norm_num_groups=4),
        train_steps=3,
        batch_size=4,
        crops_per_image=2,
    )
    return fit_generator(write_mvtec(root / "data"), "tiny", root / "models", settings)


def write_config(config_dir: Path, *, enabled: bool) -> Path:
    """qcflow.yaml with generation on or off, and line ``test`` whose anomaly model is not registered."""
    from tests.conftest import TEST_SIMULATION, write_line_config

    write_line_config(config_dir, TEST_SIMULATION, model="not-registered")
    (config_dir / "qcflow.yaml").write_text(
        f"lines_dir: lines\ngenerators: {{enabled: {str(enabled).lower()}}}\n"
    )
    return config_dir


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "good"
    folder.mkdir()
    for index in range(600, 603):
        cv2.imwrite(str(folder / f"{index}.png"), render_part(SIM, index, None).image)
    return folder


@pytest.fixture
def gen_ws(tmp_path: Path, tiny_generator_dir: Path) -> Iterator[Workspace]:
    """A workspace with generation enabled and the tiny generator registered."""
    from pipeline.generation import register_generator_dir
    from pipeline.inspection import open_workspace

    ws = open_workspace(tmp_path / "data", write_config(tmp_path / "config", enabled=True))
    register_generator_dir(ws, tiny_generator_dir)
    yield ws
    ws.engine.dispose()
