"""Fit, export, check and calibrate an anomaly model; write it with its model.json.

Torch is used only here (``qcflow fit``); calibration scores come from the
exported ONNX graph, i.e. from exactly what will run on the line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import CPU_ONNX_FILE, ONNX_FILE, ModelCard
from inspectors.preprocess import to_model_input
from inspectors.training.cpu_graph import write_cpu_graph
from inspectors.training.patchcore import PatchCoreScorer, PatchCoreSettings, export_onnx, fit_patchcore
from pipeline.datasets import GOOD, SEEN_IMAGES_FILE, MVTecDataset, digest_files, open_mvtec
from pipeline.decide import Thresholds, calibrate_thresholds
from pipeline.errors import DatasetError, ModelContractError
from pipeline.images import IMAGE_SUFFIXES, encode_png, read_image
from pipeline.simulate import SimulationSettings, indices_over_lighting_cycle, render_part
from pipeline.types import sha256_hex
from pipeline.versions import version_folder

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-3  # max |onnx - torch| relative to the largest torch score


@dataclass(frozen=True, slots=True)
class CalibrationDefects:
    """Labelled defective images that set the review threshold (see ``calibrate_thresholds``)."""

    images: list[np.ndarray] = field(repr=False)
    digest: str
    source: str
    n_in_evaluation: int = 0  # also in the dataset's test split: accepted only when asked for
    image_sha256: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.images:
            raise DatasetError(f"{self.source}: no calibration defect images")


@dataclass(frozen=True, slots=True)
class FitRequest:
    name: str
    good_images: list[np.ndarray] = field(repr=False)
    calibration_images: list[np.ndarray] = field(repr=False)
    training_digest: str
    source: str
    settings: PatchCoreSettings = PatchCoreSettings()
    target_false_reject: float = 0.01
    target_review_rate: float = 0.05
    calibration_defects: CalibrationDefects | None = None  # None: calibrate on good images only
    target_escape: float = 0.01
    image_sha256: dict[str, list[str]] = field(default_factory=dict)  # "fit"/"calibration" -> file sha256s
    calibration_source: str = "held out from the fit images"

    def seen_images(self) -> dict[str, list[str]]:
        """Every image's sha256 by role (written next to the model as ``SEEN_IMAGES_FILE``)."""
        seen = dict(self.image_sha256)
        if self.calibration_defects is not None:
            seen["calibration_defects"] = list(self.calibration_defects.image_sha256)
        return seen


_PARITY_KEYS = ((ONNX_FILE, "max_rel_diff"), (CPU_ONNX_FILE, "cpu_graph_max_rel_diff"))


def _parity(scorer: PatchCoreScorer, model_dir: Path, images: list[np.ndarray]) -> dict[str, float]:
    """The worst difference between torch and each exported graph, relative to the largest score."""
    batch = to_model_input(images, scorer.preprocessing)
    with torch.no_grad():
        ref_map, ref_score = (t.numpy() for t in scorer(torch.from_numpy(batch)))
    scale = float(np.abs(ref_score).max()) or 1.0
    parity: dict[str, float] = {"tolerance": PARITY_TOLERANCE, "n_images": len(images)}
    for name, key in _PARITY_KEYS:
        session = ort.InferenceSession(str(model_dir / name), providers=["CPUExecutionProvider"])
        ort_map, ort_score = session.run(["anomaly_map", "score"], {"image": batch})
        score_diff = float(np.abs(ort_score - ref_score).max())
        map_diff = float(np.abs(ort_map - ref_map).max())
        parity[key] = max(score_diff, map_diff) / scale
        if name == ONNX_FILE:
            parity |= {"score_max_abs_diff": score_diff, "map_max_abs_diff": map_diff}
    return parity


def _without_cpu_graph(card: ModelCard, model_dir: Path, difference: float) -> ModelCard:
    """A CPU graph that differs from torch is only a faster copy gone wrong: it is left out, and the CPU
    runs the exact graph, which passed. Its difference stays in the card's parity figures."""
    log.warning(
        "%s differs from torch by %.3g of the largest score (tolerance %g): left out, the CPU runs %s",
        model_dir / CPU_ONNX_FILE, difference, PARITY_TOLERANCE, ONNX_FILE,
    )  # fmt: skip
    (model_dir / CPU_ONNX_FILE).unlink()
    card = replace(card, cpu_onnx_sha256=None)
    card.save(model_dir)
    return card


def fit_anomaly(request: FitRequest, models_root: Path) -> tuple[Path, ModelCard]:
    """Fit, then export and calibrate: ``models_root/<name>/<version>/{model.onnx, model.json}``."""
    if not request.calibration_images:
        raise ValueError("calibration needs held-out good images")
    started = time.perf_counter()
    scorer = fit_patchcore(request.good_images, request.settings)
    return export_and_calibrate(scorer, request, time.perf_counter() - started, models_root)


def export_and_calibrate(
    scorer: PatchCoreScorer, request: FitRequest, fit_seconds: float, models_root: Path
) -> tuple[Path, ModelCard]:
    """Export to ONNX, refuse a graph that differs from torch (leave out a CPU graph that does), calibrate
    thresholds on ONNX scores.

    Written beside the final folder and renamed into place: a refused or crashed export leaves no version.
    """
    with version_folder(models_root, request.name, request.training_digest) as new:
        card = _export_into(new.folder, new.version, scorer, request, fit_seconds)
    log.info("fitted %s %s in %.1fs; thresholds %s", card.name, new.version, fit_seconds, card.thresholds)
    return new.final, card


def _export_into(
    model_dir: Path, version: str, scorer: PatchCoreScorer, request: FitRequest, fit_seconds: float
) -> ModelCard:
    settings = request.settings
    onnx_path = model_dir / ONNX_FILE
    export_onnx(scorer, onnx_path)
    write_cpu_graph(onnx_path, model_dir / CPU_ONNX_FILE)
    size = scorer.image_size
    card = ModelCard(
        name=request.name,
        version=version,
        kind="anomaly",
        architecture=f"patchcore-{scorer.backbone.name}",
        inputs={"image": {"shape": [None, 3, size, size], "dtype": "float32"}},
        outputs=["anomaly_map", "score"],
        preprocessing=scorer.preprocessing,
        thresholds=Thresholds(0.0, 0.0),  # calibrated below, from the ONNX scores
        onnx_sha256=sha256_hex(onnx_path.read_bytes()),
        cpu_onnx_sha256=sha256_hex((model_dir / CPU_ONNX_FILE).read_bytes()),
        map_scale=None if scorer.coarse is None or scorer.coarse.in_score else 1.0,  # set below
    )
    card.save(model_dir)
    parity = _parity(scorer, model_dir, request.calibration_images[:4])
    if parity["max_rel_diff"] > PARITY_TOLERANCE:
        raise ModelContractError(f"{onnx_path}: differs from torch beyond tolerance: {parity}")
    if parity["cpu_graph_max_rel_diff"] > PARITY_TOLERANCE:
        card = _without_cpu_graph(card, model_dir, parity["cpu_graph_max_rel_diff"])
    inspector = AnomalyInspector(model_dir)
    calib_maps, calib_scores = inspector.score_images(request.calibration_images)
    defects = request.calibration_defects
    thresholds = calibrate_thresholds(
        calib_scores,
        None if defects is None else inspector.score_images(defects.images)[1],
        target_false_reject=request.target_false_reject,
        target_review_rate=request.target_review_rate,
        target_escape=request.target_escape,
    )
    training: dict[str, Any] = {
        "data_digest": request.training_digest,
        "source": request.source,
        "n_fit_images": len(request.good_images),
        "n_calibration_images": len(request.calibration_images),
        "calibration_source": request.calibration_source,
        "fit_seconds": round(fit_seconds, 3),
        "bank_size": int(scorer.bank.shape[0]),
        "feature_dim": int(scorer.bank.shape[1]),
        "settings": {k: getattr(settings, k) for k in settings.__slots__},
        "backbone": scorer.backbone.describe(),
    }
    if scorer.coarse is not None:
        training["coarse"] = {
            "window_cells": scorer.coarse.cells,
            "bank_size": int(scorer.coarse.bank.shape[0]),
            "weight": scorer.coarse.weight,  # coarse_weight times the fine / coarse spread of distances
            "sigma": scorer.coarse.sigma,
            "relative": scorer.coarse.relative,
            "in_score": scorer.coarse.in_score,
        }
    if defects is not None:
        training["calibration_defects"] = {
            "source": defects.source,
            "digest": defects.digest,
            "n_images": len(defects.images),
            "n_in_evaluation_split": defects.n_in_evaluation,
        }
    if card.map_scale is not None:
        map_scale = _map_scale(calib_maps, calib_scores, request.target_review_rate, model_dir)
        card = replace(card, map_scale=map_scale)
    card = replace(card, thresholds=thresholds, training=training, parity=parity)
    card.save(model_dir)
    (model_dir / SEEN_IMAGES_FILE).write_text(json.dumps(request.seen_images()))
    return card


def _map_scale(maps: np.ndarray, scores: np.ndarray, review_rate: float, where: Path) -> float:
    """The factor that gives the good calibration images' map maxima the same (1 - review_rate) quantile
    as their scores: a map region at the review threshold is then as rare on good parts as a score there."""
    q = 1.0 - review_rate
    map_level = float(np.quantile(maps.reshape(len(maps), -1).max(axis=1), q))
    if map_level <= 0:
        raise ModelContractError(f"{where}: the good images' maps peak at {map_level:.3g}; cannot scale them")
    return float(np.quantile(scores, q)) / map_level


MIN_CALIBRATION_IMAGES = 8  # good images the thresholds come from, at the least


def split_calibration(
    paths: list[Path], every: int = 10, minimum: int = MIN_CALIBRATION_IMAGES
) -> tuple[list[Path], list[Path]]:
    """Hold out every ``every``-th good image (at least ``minimum``) for calibration."""
    step = max(2, min(every, len(paths) // minimum))
    calib = paths[::step]
    held = set(calib)
    return [p for p in paths if p not in held], calib


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def calibration_defect_paths(folder: Path) -> list[Path]:
    """Defective images in ``folder``: MVTec layout (a ``test`` folder) gives ``test/<defect_type>/*``,
    any other folder its images and those of its sub-folders; folders named ``good`` never count."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: calibration defect folder not found")
    top = folder / "test" if (folder / "test").is_dir() else folder
    paths = [] if top != folder else _image_files(folder)
    for sub in sorted(p for p in top.iterdir() if p.is_dir() and p.name != GOOD):
        paths += _image_files(sub)
    if not paths:
        where = "test/<defect_type>/*" if top != folder else "* or <defect_type>/*"
        raise DatasetError(f"{folder}: no defective images found (looked for {where}, {GOOD} excluded)")
    return paths


def _evaluation_overlap(
    folder: Path,
    paths: list[Path],
    digests: list[str],
    evaluation: MVTecDataset | None,
    allow: bool,
    what: str,
) -> int:
    """How many of ``paths`` (by bytes) are also in ``evaluation``'s test split; refused unless ``allow``.

    Thresholds tuned on the images an evaluation scores make that evaluation's rates look better than
    the line will see them."""
    if evaluation is None or not evaluation.test:
        return 0
    held = {sha256_hex(item.path.read_bytes()) for item in evaluation.test}
    shared = [p for p, d in zip(paths, digests, strict=True) if d in held]
    if shared and not allow:
        raise DatasetError(
            f"{folder}: {len(shared)} of {len(paths)} {what} (e.g. {shared[0]}) are also in "
            f"{evaluation.root / 'test'}, the images an evaluation of this dataset scores; thresholds tuned "
            f"on them make that evaluation optimistic. Use {what} kept apart from evaluation, or allow the "
            "overlap explicitly (--allow-evaluation-overlap)"
        )
    if shared:
        log.warning("%d %s are also in %s/test", len(shared), what, evaluation.root)
    return len(shared)


def load_calibration_defects(
    folder: Path, evaluation: MVTecDataset | None = None, *, allow_evaluation_overlap: bool = False
) -> CalibrationDefects:
    """Read the defect images; refuse any that are also in ``evaluation``'s test split (same file or same
    bytes) unless ``allow_evaluation_overlap`` says the caller accepts that."""
    paths = calibration_defect_paths(folder)
    digests = [sha256_hex(p.read_bytes()) for p in paths]
    overlap = _evaluation_overlap(
        folder, paths, digests, evaluation, allow_evaluation_overlap, "calibration defect images"
    )
    return CalibrationDefects(
        images=[read_image(p) for p in paths],
        digest=digest_files(paths),
        source=str(Path(folder).resolve()),
        n_in_evaluation=overlap,
        image_sha256=tuple(digests),
    )


def calibration_good_paths(
    folder: Path, dataset: MVTecDataset, *, allow_evaluation_overlap: bool = False
) -> list[Path]:
    """Good images of parts the model is not fitted on (``folder/*``): refused when any is also in
    ``dataset``'s ``train/good`` (the fit images) or, unless allowed, in its test split."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: calibration good-image folder not found")
    paths = _image_files(folder)
    if len(paths) < MIN_CALIBRATION_IMAGES:
        raise DatasetError(
            f"{folder}: {len(paths)} images for calibration (looked for {folder}/*); "
            f"thresholds need at least {MIN_CALIBRATION_IMAGES}"
        )
    digests = [sha256_hex(p.read_bytes()) for p in paths]
    fitted = {sha256_hex(p.read_bytes()) for p in dataset.train_good}
    reused = [p for p, d in zip(paths, digests, strict=True) if d in fitted]
    if reused:
        raise DatasetError(
            f"{folder}: {len(reused)} of {len(paths)} calibration good images (e.g. {reused[0]}) are also in "
            f"{dataset.root / 'train' / GOOD}, which the model is fitted on; calibration needs parts the "
            "model has not seen"
        )
    _evaluation_overlap(folder, paths, digests, dataset, allow_evaluation_overlap, "calibration good images")
    return paths


def request_from_mvtec(
    root: Path,
    name: str,
    settings: PatchCoreSettings,
    *,
    calibration_defects: Path | None = None,
    calibration_good: Path | None = None,
    allow_evaluation_overlap: bool = False,
    **kwargs: Any,
) -> FitRequest:
    """Fit on ``root/train/good``; a held-out share of it calibrates, or ``calibration_good``, a folder of
    good images of other parts, when given (all of ``train/good`` is then fitted on).
    ``calibration_defects``, a folder of defective images, sets the review threshold too; neither may
    hold images of ``root/test`` unless allowed."""
    dataset = open_mvtec(root, need_test=False)
    defects = (
        None
        if calibration_defects is None
        else load_calibration_defects(
            calibration_defects, dataset, allow_evaluation_overlap=allow_evaluation_overlap
        )
    )
    if calibration_good is None:
        fit_paths, calib_paths = split_calibration(list(dataset.train_good))
    else:
        fit_paths = list(dataset.train_good)
        calib_paths = calibration_good_paths(
            calibration_good, dataset, allow_evaluation_overlap=allow_evaluation_overlap
        )
        kwargs["calibration_source"] = str(Path(calibration_good).resolve())
    return FitRequest(
        name=name,
        good_images=[read_image(p) for p in fit_paths],
        calibration_images=[read_image(p) for p in calib_paths],
        training_digest=digest_files(list(dataset.train_good)),
        image_sha256={
            "fit": [sha256_hex(p.read_bytes()) for p in fit_paths],
            "calibration": [sha256_hex(p.read_bytes()) for p in calib_paths],
        },
        source=str(Path(root).resolve()),
        settings=settings,
        calibration_defects=defects,
        **kwargs,
    )


# Simulated good parts for fitting come from far above the indices a line inspects.
SIMULATION_FIT_OFFSET = 10_000_000


def request_from_simulation(
    simulation: SimulationSettings, name: str, *, n_fit: int, n_calibration: int, **kwargs: Any
) -> FitRequest:
    """Good parts spread over the line's lighting cycle, every few of them held out for calibration, so
    that both the bank and the thresholds see the light the line will run under."""
    total = n_fit + n_calibration
    held_out = {j * total // n_calibration for j in range(n_calibration)}
    indices = indices_over_lighting_cycle(total, SIMULATION_FIT_OFFSET)
    rendered = [render_part(simulation, i, defect=None) for i in indices]
    parts = [p for k, p in enumerate(rendered) if k not in held_out]
    parts += [p for k, p in enumerate(rendered) if k in held_out]
    digests = [sha256_hex(encode_png(part.image)) for part in parts]
    return FitRequest(
        name=name,
        good_images=[p.image for p in parts[:n_fit]],
        calibration_images=[p.image for p in parts[n_fit:]],
        training_digest=hashlib.sha256("".join(digests).encode()).hexdigest(),
        image_sha256={"fit": digests[:n_fit], "calibration": digests[n_fit:]},
        source=f"simulated line {simulation}",
        calibration_source="other simulated good parts",
        **kwargs,
    )
