"""What the orchestrator knows of specialists: a Protocol and a registry by name.

Specialists are imported lazily by name so that ``pipeline`` never imports
``inspectors`` or ``generators`` (nor their heavy dependencies) directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pipeline.decide import Thresholds
from pipeline.errors import ConfigError
from pipeline.types import Finding, Frame

INSPECTORS: dict[str, str] = {
    "anomaly": "inspectors.anomaly:AnomalyInspector",
    "classifier": "inspectors.classifier:DefectTypeInspector",
    "ocr": "inspectors.ocr:LabelOcrInspector",
    "caption": "inspectors.caption:CaptionInspector",
    "describe": "inspectors.describe:FindingsDescriber",
}


@runtime_checkable
class Inspector(Protocol):
    """Understands frames: turns each into findings that can be checked against truth."""

    name: str
    version: str
    providers: tuple[str, ...]

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]: ...


@runtime_checkable
class RegionInspector(Protocol):
    """Looks again at what earlier specialists found (e.g. names the type of an anomaly region)."""

    name: str
    version: str
    providers: tuple[str, ...]

    def inspect_regions(
        self, frames: Sequence[Frame], found: Sequence[Sequence[Finding]]
    ) -> list[list[Finding]]: ...


class Describer(Protocol):
    """Turns one frame's findings into a sentence; says nothing the findings do not."""

    name: str
    version: str

    def describe(self, frame: Frame, findings: Sequence[Finding]) -> Finding: ...


class AnomalyScorer(Inspector, Protocol):
    """An inspector that also scores raw images (evaluation, calibration, reports)."""

    thresholds: Thresholds

    def score_images(self, images_bgr: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


def anomaly_scorer(model_dir: Path, **options: object) -> AnomalyScorer:
    scorer: AnomalyScorer = inspector_class("anomaly")(model_dir, **options)
    return scorer


def describer() -> Describer:
    made: Describer = inspector_class("describe")()
    return made


def inspector_class(name: str) -> Callable[..., Any]:
    """The specialist class registered under ``name``, imported on first use."""
    try:
        target = INSPECTORS[name]
    except KeyError as exc:
        raise ConfigError(f"unknown specialist {name!r}; known: {sorted(INSPECTORS)}") from exc
    module, _, attr = target.partition(":")
    factory: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return factory
