"""Generating synthetic defects: plain functions behind ``qcflow generate`` and the generate-defects flow.

Generation is a tool, OFF unless ``generators.enabled: true`` in qcflow.yaml.
Every image it makes is recorded pending (``pipeline.review``) and is used
nowhere until a reviewer approves it. The generator itself (torch, diffusers)
is imported by name only when asked for, so ``import pipeline`` stays light.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select

from pipeline.config import load_app_config
from pipeline.db import repository as repo
from pipeline.db.model_registry import ModelRecord
from pipeline.db.models import FrameRow, InspectionRow
from pipeline.errors import DatasetError, ModelNotFound, QCError, StorageError
from pipeline.images import IMAGE_SUFFIXES, decode_image, read_image
from pipeline.inspection import Workspace
from pipeline.review import record_synthetic
from pipeline.specialists import AnomalyScorer, anomaly_scorer
from pipeline.types import Decision, SyntheticImage, sha256_hex

log = logging.getLogger(__name__)

GENERATOR_LOADERS = {  # generator.json "kind" -> class with a ``load(folder)``
    "defect-inpainting": "generators.diffusion:DefectInpaintingGenerator",
    "sd-inpainting": "generators.sd_inpainting:StableDiffusionInpaintingGenerator",
}
DEFAULT_DISK_BUDGET_BYTES = 2 * 1024**3
DISK_RESERVE_BYTES = 512 * 1024**2  # never fill the disk the database lives on
RECORD_BATCH = 8  # images per database transaction


class GenerationDisabled(QCError):
    """Generation was asked for while ``generators.enabled`` is false."""


class GeneratorOutput(Protocol):
    image: np.ndarray
    mask: np.ndarray
    num_inference_steps: int
    guidance: float


class Generator(Protocol):
    """What generation needs of a generator (``generators.diffusion.DefectInpaintingGenerator``)."""

    name: str
    version: str

    def draw_mask(self, defect_class: str, shape: tuple[int, int], seed: int) -> np.ndarray: ...

    def class_stats(self, defect_class: str) -> dict[str, float] | None: ...

    def __call__(
        self,
        *,
        image: np.ndarray,
        mask: np.ndarray,
        defect_class: str,
        seed: int,
        num_inference_steps: int | None = None,
        guidance: float | None = None,
    ) -> GeneratorOutput: ...


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    line_id: str
    defect_class: str
    count: int
    seed: int = 0
    base_images: str = "good"  # "good": the line's frames that passed inspection; else a folder
    num_inference_steps: int | None = None  # None: the generator's default
    guidance: float | None = None
    max_disk_bytes: int = DEFAULT_DISK_BUDGET_BYTES

    def __post_init__(self) -> None:
        if self.count < 1 or self.seed < 0:
            raise ValueError(f"count must be >= 1 and seed >= 0, got {self.count} and {self.seed}")


@dataclass(frozen=True, slots=True)
class BaseImage:
    sha256: str
    where: str
    load: Callable[[], np.ndarray]


def require_generation_enabled(config_dir: Path) -> None:
    if not load_app_config(config_dir).generators.enabled:
        raise GenerationDisabled(
            f"generation is off: set 'generators: {{enabled: true}}' in {config_dir / 'qcflow.yaml'}"
        )


def register_generator_dir(ws: Workspace, folder: Path, *, activate: bool = True) -> ModelRecord:
    """Register a saved generator (its ``generator.json``) in the model registry."""
    card_bytes = (folder / "generator.json").read_bytes()
    card = json.loads(card_bytes)
    if card.get("kind") not in GENERATOR_LOADERS:
        raise ModelNotFound(
            f"{folder}: generator kind {card.get('kind')!r} unknown; known {sorted(GENERATOR_LOADERS)}"
        )
    record = ModelRecord(
        name=card["name"],
        version=card["version"],
        kind=card["kind"],
        path=str(folder.resolve()),
        onnx_sha256=sha256_hex(card_bytes),  # the card holds the digest of every file it needs
        metrics={"training": card["training"]},
        thresholds={},
        preprocessing={"image_size": card["image_size"], "classes": card["classes"]},
        training_digest=card["training"]["data_digest"],
        active=activate,
    )
    with ws.session() as session, session.begin():
        return repo.register_model(session, record)


def load_generator(ws: Workspace, name: str | None = None) -> Generator:
    """The active version of generator ``name`` (or the only registered generator), loaded."""
    with ws.session() as session:
        generators = [m for m in repo.list_models(session) if m.kind in GENERATOR_LOADERS]
        names = sorted({m.name for m in generators})
        if name is None and len(names) != 1:
            raise ModelNotFound(f"name the generator to use (--generator); registered generators: {names}")
        record = repo.get_active_model(session, name or names[0])
    if record.kind not in GENERATOR_LOADERS:
        raise ModelNotFound(f"model {record.name!r} is a {record.kind!r} model, not a generator")
    module, _, attr = GENERATOR_LOADERS[record.kind].partition(":")
    return getattr(importlib.import_module(module), attr).load(Path(record.path))  # type: ignore[no-any-return]


def base_images(ws: Workspace, line_id: str, source: str) -> list[BaseImage]:
    """Real good frames to inpaint into: the line's frames that passed inspection, or a folder's images."""
    if source == "good":
        with ws.session() as session:
            shas = session.scalars(
                select(FrameRow.sha256)
                .join(InspectionRow, InspectionRow.frame_id == FrameRow.id)
                .where(FrameRow.line_id == line_id, InspectionRow.decision == Decision.PASS.value)
                .where(FrameRow.image_pruned_at.is_(None))  # retention removed the others' pictures
                .distinct()
                .order_by(FrameRow.sha256)
            ).all()
        images = [BaseImage(s, f"frame {s}", _stored(ws, s)) for s in shas]
        hint = f"no frames of line {line_id!r} passed inspection yet; inspect first or pass --base-images DIR"
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise DatasetError(f"--base-images {source}: expected 'good' or a folder of good images")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        images = [BaseImage(sha256_hex(p.read_bytes()), str(p), _file(p)) for p in files]
        hint = f"{folder}: no images ({sorted(IMAGE_SUFFIXES)})"
    if not images:
        raise DatasetError(hint)
    return images


def _stored(ws: Workspace, sha256: str) -> Callable[[], np.ndarray]:
    return lambda: decode_image(ws.store.get(sha256), f"stored frame {sha256}")


def _file(path: Path) -> Callable[[], np.ndarray]:
    return lambda: read_image(path)


def check_disk_budget(store_root: Path, count: int, shape: tuple[int, ...], budget_bytes: int) -> None:
    """Refuse up front when ``count`` images might not fit (PNG of image + mask, bounded by raw size)."""
    needed = count * (int(np.prod(shape)) + shape[0] * shape[1]) + count * 4096
    store_root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(store_root).free - DISK_RESERVE_BYTES
    allowed = min(budget_bytes, free)
    if needed > allowed:
        raise StorageError(
            f"--count {count} needs up to {needed / 1e6:.1f} MB in {store_root}; the budget allows "
            f"{max(allowed, 0) / 1e6:.1f} MB (limit {budget_bytes / 1e6:.1f} MB, free {free / 1e6:.1f} MB "
            f"after a {DISK_RESERVE_BYTES / 1e6:.0f} MB reserve)"
        )


def line_anomaly_scorer(ws: Workspace, line_id: str) -> AnomalyScorer | None:
    """The line's anomaly specialist for the pre-screen, or None (logged) when it has none."""
    settings = ws.line(line_id).specialists.anomaly
    if not settings.enabled:
        return None
    try:
        with ws.session() as session:
            record = repo.get_active_model(session, settings.model)
    except ModelNotFound as exc:
        log.warning("pre-screen without the anomaly specialist: %s", exc)
        return None
    return anomaly_scorer(Path(record.path))


def generate_defects(
    ws: Workspace,
    request: GenerationRequest,
    generator: Generator,
    scorer: AnomalyScorer | None = None,
) -> list[int]:
    """Generate, pre-screen and record ``request.count`` images pending review; returns their ids.

    Image ``i`` uses seed ``request.seed + i`` for the base frame it picks, its
    mask and its noise, so one image can be made again alone. Images are
    committed in small batches, each whole or not at all: a failure leaves
    nothing half-written in the database.
    """
    require_generation_enabled(ws.config_dir)
    ws.line(request.line_id)  # an unknown line is refused before any work
    generator.draw_mask(request.defect_class, (8, 8), request.seed)  # an unknown class, likewise
    bases = base_images(ws, request.line_id, request.base_images)
    first = bases[0].load()
    check_disk_budget(ws.store.root, request.count, first.shape, request.max_disk_bytes)
    ids: list[int] = []
    for start in range(0, request.count, RECORD_BATCH):
        seeds = range(request.seed + start, request.seed + min(request.count, start + RECORD_BATCH))
        images = [_generate_one(generator, request, bases, seed, scorer) for seed in seeds]
        with ws.session() as session, session.begin():
            ids.extend(record_synthetic(session, ws.store, image) for image in images)
        log.info(
            "recorded %d/%d synthetic %s images pending review", len(ids), request.count, request.defect_class
        )
    return ids


def _generate_one(
    generator: Generator,
    request: GenerationRequest,
    bases: Sequence[BaseImage],
    seed: int,
    scorer: AnomalyScorer | None,
) -> SyntheticImage:
    from generators.prescreen import AnomalyView, prescreen

    base = bases[int(np.random.default_rng(seed).integers(len(bases)))]
    pixels = base.load()
    mask = generator.draw_mask(request.defect_class, pixels.shape[:2], seed)
    output = generator(
        image=pixels,
        mask=mask,
        defect_class=request.defect_class,
        seed=seed,
        num_inference_steps=request.num_inference_steps,
        guidance=request.guidance,
    )
    anomaly = None
    if scorer is not None:
        maps, scores = scorer.score_images([output.image])
        anomaly = AnomalyView(maps[0], float(scores[0]), float(scorer.thresholds.review))
    screen = prescreen(
        pixels, output.image, output.mask, generator.class_stats(request.defect_class), anomaly
    )
    conditioning: dict[str, Any] = {
        "num_inference_steps": output.num_inference_steps,
        "guidance": output.guidance,
        "line_id": request.line_id,
        "base_image": base.where,
        "prescreen": screen.as_dict(),
    }
    return SyntheticImage(
        pixels=output.image,
        mask=output.mask,
        defect_class=request.defect_class,
        generator=generator.name,
        model_version=generator.version,
        seed=seed,
        conditioning=conditioning,
        source_image_sha256=base.sha256,
    )
