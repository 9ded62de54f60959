"""Configuration: YAML files validated by pydantic models (unknown keys refused).

``config/qcflow.yaml`` holds the installation settings, ``config/lines/*.yaml``
one production line each. Secrets and per-machine paths come from the
environment (``QCFLOW_HOME``, ``QCFLOW_DATABASE_URL``, ``QCFLOW_CONFIG_DIR``,
``QCFLOW_INFERENCE_THREADS``, ``QCFLOW_INFERENCE_BATCH``, ``QCFLOW_INFERENCE_LANES``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.types import Decision

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(_Strict):
    """Either a cron expression or an interval; the Prefect deployment uses it."""

    cron: str | None = None
    interval_seconds: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of 'cron' or 'interval_seconds'")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron must have 5 fields (min hour day month weekday), got {self.cron!r}")
        return self


class CameraConfig(_Strict):
    camera_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    source: str = Field(min_length=1, description="sim://, folder path, video file, rtsp://, http://, usb:N")
    mm_per_px: float | None = Field(default=None, gt=0)
    # Frames much larger than the model input: score overlapping tiles of this size at full resolution.
    tile_px: int | None = Field(default=None, ge=32)
    tile_overlap: float = Field(default=0.25, ge=0, lt=1)


def coarse_map_problem(
    coarse_window: float,
    coarse_sigma: float | None,
    coarse_relative: float,
    fine_score: bool = False,
    aspect: str = "stretch",
) -> str | None:
    """Why these coarse-map settings do not go together, or None: the map's shape needs a coarse map, and
    a score from the fine map alone is the graph's (the maximum over the whole input, so ``stretch``)."""
    if not coarse_window and (coarse_sigma is not None or coarse_relative or fine_score):
        return (
            f"coarse_sigma={coarse_sigma}, coarse_relative={coarse_relative}, fine_score={fine_score}: "
            "these shape the coarse map or keep it out of the score, and only a coarse_window > 0 adds one"
        )
    if fine_score and aspect != "stretch":
        return f"fine_score with aspect={aspect!r}: the fine score covers the whole input, so stretch only"
    return None


class AnomalySettings(_Strict):
    enabled: bool = True
    model: str = Field(min_length=1, description="registered model name")
    review_threshold: float | None = None  # overrides of the model's calibrated thresholds
    fail_threshold: float | None = None
    # train_model activates its new version itself (else a person does). A training policy, not an
    # inspection setting: excluded from dumps so the config hash that identifies inspections stays put.
    auto_activate: bool = Field(default=False, exclude=True)
    # The feature backbone train_model fits with (lite0 | lite1 | lite2 | onnx:PATH | hf:DIR), chosen
    # per line by measured accuracy against speed (docs/benchmarks.md). Also a training policy.
    backbone: str = Field(default="lite0", min_length=1, exclude=True)
    # Border pixels repeated before the backbone (model-input px; docs/architecture.md), also for train_model.
    edge_padding: int = Field(default=0, ge=0, exclude=True)
    # Patches kept in the memory bank (docs/benchmarks.md: larger banks score textures better, run slower).
    bank_size: int = Field(default=4096, ge=64, exclude=True)
    # Smoothing of the anomaly map (model-input px): wider localises large, faint defects better.
    blur_sigma: float = Field(default=4.0, ge=0.5, exclude=True)
    # "pad": frames mirrored out to a square before the model, keeping their proportions (for lines whose
    # frames are far from square; docs/architecture.md#aspect-ratio). Also a training policy.
    aspect: Literal["stretch", "pad"] = Field(default="stretch", exclude=True)
    # A coarse descriptor over this share of the feature map's side, added to the map (0: none; for
    # large, faint defects; docs/architecture.md#coarse-descriptor), and how much it counts.
    coarse_window: float = Field(default=0.0, ge=0.0, le=1.0, exclude=True)
    coarse_weight: float = Field(default=0.5, ge=0.0, exclude=True)
    # The coarse map's own smoothing (None: blur_sigma) and the share of each frame's median coarse distance
    # taken off it (docs/architecture.md#coarse-descriptor).
    coarse_sigma: float | None = Field(default=None, ge=0.5, exclude=True)
    coarse_relative: float = Field(default=0.0, ge=0.0, le=1.0, exclude=True)
    # The image score (pass/fail) from the fine map alone while the heat map keeps the coarse one
    # (docs/architecture.md#coarse-descriptor): one model for pass/fail and localisation.
    fine_score: bool = Field(default=False, exclude=True)
    # The model's input side (None: the backbone's own); larger sees thin defects on fine textures
    # (docs/benchmarks.md#several-photographs-of-one-tile) and runs slower. Also a training policy.
    image_size: int | None = Field(default=None, ge=32, exclude=True)

    def fit_options(self) -> dict[str, Any]:
        """The training policy train_model fits this line's model with."""
        names = (
            "backbone",
            "edge_padding",
            "bank_size",
            "blur_sigma",
            "aspect",
            "coarse_window",
            "coarse_weight",
            "coarse_sigma",
            "coarse_relative",
            "fine_score",
            "image_size",
        )
        return {name: getattr(self, name) for name in names}

    @model_validator(mode="after")
    def _both_or_none(self) -> AnomalySettings:
        if (self.review_threshold is None) != (self.fail_threshold is None):
            raise ValueError("override both review_threshold and fail_threshold, or neither")
        if self.review_threshold is not None and self.review_threshold > self.fail_threshold:  # type: ignore[operator]
            raise ValueError("review_threshold must not exceed fail_threshold")
        return self

    @model_validator(mode="after")
    def _coarse_map_needs_a_window(self) -> AnomalySettings:
        problem = coarse_map_problem(
            self.coarse_window, self.coarse_sigma, self.coarse_relative, self.fine_score, self.aspect
        )
        if problem:
            raise ValueError(problem)
        return self


class OcrSettings(_Strict):
    """Read a printed label / lot code; a missing or wrong code fails the part."""

    enabled: bool = True
    roi: tuple[float, float, float, float] | None = Field(
        default=None, description="x, y, w, h as fractions of the frame; None reads the whole frame"
    )
    pattern: str | None = Field(default=None, description="regular expression the text must match in full")
    min_confidence: float = Field(
        default=0.8, ge=0, le=1, description="every character's confidence; below it the part goes to review"
    )
    min_print_contrast: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="(light - dark) / light grey level of the text's box; below it (faint or smeared ink) "
        "the part fails; None does not check",
    )

    @field_validator("roi")
    @classmethod
    def _roi_inside_frame(
        cls, roi: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if roi is not None:
            x, y, w, h = roi
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x and 0 < h <= 1 - y):
                raise ValueError(f"roi must lie inside the frame as fractions (x, y, w, h), got {roi}")
        return roi

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return pattern


class ClassifierSettings(_Strict):
    enabled: bool = True
    model: str = Field(min_length=1, description="registered classifier model name")
    classes: list[str] | None = None  # when given, must equal the model's classes


class DescribeSettings(_Strict):
    enabled: bool = True


class CaptionSettings(_Strict):
    """A local image-captioning model's sentence, kept beside the grounded description; never decides."""

    enabled: bool = True
    model: str = Field(min_length=1, description="registered captioning model (qcflow models import-caption)")
    max_tokens: int = Field(default=20, gt=0, le=128, description="longest caption, in tokens")


class Specialists(_Strict):
    """Which specialists a line runs; a section that is absent or ``enabled: false`` is never loaded."""

    anomaly: AnomalySettings
    classifier: ClassifierSettings | None = None  # absent = off
    ocr: OcrSettings | None = None
    describe: DescribeSettings | None = None
    caption: CaptionSettings | None = None  # off unless the line names a captioning model


class LineConfig(_Strict):
    line_id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    name: str
    schedule: Schedule
    batch_size: int = Field(default=64, gt=0, le=10_000, description="max frames per camera per run")
    cameras: list[CameraConfig] = Field(min_length=1)
    specialists: Specialists

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.camera_id for c in cameras]
        if len(ids) != len(set(ids)):
            raise ValueError(f"camera ids must be unique, got {ids}")
        return cameras

    def model_names(self) -> list[str]:
        """Registered models the enabled specialists need."""
        s = self.specialists
        names = [s.anomaly.model] if s.anomaly.enabled else []
        for optional in (s.classifier, s.caption):
            if optional is not None and optional.enabled:
                names.append(optional.model)
        return names

    def camera(self, camera_id: str) -> CameraConfig:
        for c in self.cameras:
            if c.camera_id == camera_id:
                return c
        raise ConfigError(
            f"line {self.line_id!r} has no camera {camera_id!r}; "
            f"cameras: {[c.camera_id for c in self.cameras]}"
        )


class GeneratorSettings(_Strict):
    enabled: bool = False


class DashboardSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)


class EventSettings(_Strict):
    mqtt_url: str | None = Field(default=None, pattern=r"^mqtt://")  # None: no line events
    publish: list[Decision] = [Decision.FAIL]


class RetentionSettings(_Strict):
    """How long the image store keeps the pictures of passed frames (pipeline.retention)."""

    keep_passed_images_days: float | None = Field(default=None, ge=0)  # None: keep them all
    schedule: Schedule = Schedule(cron="30 3 * * *")  # when `qcflow serve` runs the pruning


class AppConfig(_Strict):
    lines_dir: str = "lines"  # relative to the config folder
    generators: GeneratorSettings = GeneratorSettings()
    dashboard: DashboardSettings = DashboardSettings()
    events: EventSettings = EventSettings()
    retention: RetentionSettings = RetentionSettings()


class Environment(BaseSettings):
    """Per-machine settings and secrets: only from the environment."""

    # a variable set to nothing counts as unset
    model_config = SettingsConfigDict(env_prefix="QCFLOW_", extra="ignore", env_ignore_empty=True)

    home: Path = Path("qcflow-data")
    database_url: str | None = None
    config_dir: Path = DEFAULT_CONFIG_DIR
    # ONNX Runtime threads per model session (None: the lanes' share of the cores in an inspection run,
    # else one per core); 1 where several workers share the cores
    inference_threads: int | None = Field(default=None, ge=1)
    # frames per anomaly-model call (None: by provider); which is fastest depends on the CPU
    inference_batch: int | None = Field(default=None, ge=1)
    # chunks of frames an inspection run has in its models at once (None: INFERENCE_LANES)
    inference_lanes: int | None = Field(default=None, ge=1)

    def lanes(self) -> int:
        return self.inference_lanes or INFERENCE_LANES

    def session_threads(self, threads: int | None = None) -> int | None:
        """ONNX Runtime threads for one session: ``threads`` where given, else ``inference_threads``;
        None leaves ONNX Runtime's own choice, one per core."""
        return threads or self.inference_threads

    def lane_threads(self) -> int:
        """ONNX Runtime threads per session of an inspection run: ``inference_threads`` where set, else
        the cores shared out among the lanes."""
        return self.session_threads() or max(1, (os.cpu_count() or 1) // self.lanes())


THREADS_ENV = "QCFLOW_INFERENCE_THREADS"
# Two chunks in the models at once, each session on half the cores: one lane's decoding, resizing and
# heat maps run while the other's model does, and a model on one thread never waits for a second
# thread that the pipeline holds up (measured: docs/benchmarks.md, "Inference lanes")
INFERENCE_LANES = 2


def load_environment() -> Environment:
    try:
        return Environment()
    except ValidationError as exc:
        problems = "; ".join(
            f"QCFLOW_{str(err['loc'][0]).upper()}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigError(f"environment: {problems}") from exc


def format_errors(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return f"{path}: invalid configuration\n" + "\n".join(lines)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_app_config(config_dir: Path) -> AppConfig:
    path = config_dir / "qcflow.yaml"
    try:
        return AppConfig.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise ConfigError(format_errors(path, exc)) from exc


def load_line_config(path: Path) -> LineConfig:
    try:
        line = LineConfig.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise ConfigError(format_errors(path, exc)) from exc
    if line.line_id != path.stem:
        raise ConfigError(f"{path}: line_id {line.line_id!r} must match the file name {path.stem!r}")
    return line


def lines_dir(config_dir: Path) -> Path:
    return config_dir / load_app_config(config_dir).lines_dir


def load_line(config_dir: Path, line_id: str) -> LineConfig:
    folder = lines_dir(config_dir)
    path = folder / f"{line_id}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"unknown line {line_id!r}: no {path}; configured lines: {known}")
    return load_line_config(path)


def load_all_lines(config_dir: Path) -> list[LineConfig]:
    return [load_line_config(p) for p in sorted(lines_dir(config_dir).glob("*.yaml"))]
