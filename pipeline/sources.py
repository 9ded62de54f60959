"""Frame sources behind one interface: folder, video/stream/camera, simulated line.

A source yields ``Pulled`` items in order; each carries the ``position`` to
store as the watermark once it has been logged. The caller persists the
watermark only after the frame is in the database, so a crash re-reads a frame
(harmless: inspections are idempotent) and never skips one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from pipeline.errors import ConfigError, FrameError, SourceUnavailable
from pipeline.images import IMAGE_SUFFIXES, decode_image, encode_png
from pipeline.simulate import SimulatedLine, SimulationSettings
from pipeline.types import Frame, sha256_hex

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm"})
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")


@dataclass(frozen=True, slots=True)
class Pulled:
    """One item from a source: a frame, or the reason it could not be read."""

    position: str
    frame: Frame | None = None
    error: str | None = None
    truth: str | None = None  # ground-truth defect kind, where the source knows it ("" = good)


class FrameSource(Protocol):
    uri: str

    def read(self, since: str | None, limit: int) -> Iterator[Pulled]: ...


def _frame(
    image_bytes: bytes, pixels: np.ndarray, line_id: str, camera_id: str, uri: str, at: datetime
) -> Frame:
    return Frame(pixels, line_id, camera_id, at, sha256_hex(image_bytes), uri, image_bytes)


class FolderSource:
    """New image files in a folder, oldest first; the watermark is (mtime, name)."""

    def __init__(self, folder: Path, line_id: str, camera_id: str) -> None:
        self.folder, self.line_id, self.camera_id = folder, line_id, camera_id
        self.uri = str(folder)

    @staticmethod
    def _key(position: str) -> tuple[int, str]:
        mtime, _, name = position.partition(":")
        return int(mtime), name

    def read(self, since: str | None, limit: int) -> Iterator[Pulled]:
        if not self.folder.is_dir():
            raise SourceUnavailable(f"folder source {self.folder}: not a directory")
        after = self._key(since) if since else (-1, "")
        files = []
        for p in self.folder.iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                key = (p.stat().st_mtime_ns, p.name)
                if key > after:
                    files.append((key, p))
        for (mtime, name), path in sorted(files)[:limit]:
            position = f"{mtime}:{name}"
            at = datetime.fromtimestamp(mtime / 1e9, UTC)
            try:
                data = path.read_bytes()
                pixels = decode_image(data, str(path))
                frame = _frame(data, pixels, self.line_id, self.camera_id, str(path), at)
            except (FrameError, OSError) as exc:
                yield Pulled(position, error=str(exc))
                continue
            yield Pulled(position, frame)


class VideoSource:
    """A video file, a stream URL or a camera index through OpenCV.

    Files resume at the frame after the watermark. Live streams reconnect with
    exponential backoff when a read fails and give up after ``max_retries``.
    """

    def __init__(
        self,
        target: str | int,
        line_id: str,
        camera_id: str,
        *,
        live: bool,
        max_retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self.target, self.line_id, self.camera_id, self.live = target, line_id, camera_id, live
        self.uri = str(target) if not isinstance(target, int) else f"usb:{target}"
        self.max_retries, self.backoff_s = max_retries, backoff_s

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            raise SourceUnavailable(f"video source {self.uri}: cannot open")
        return cap

    def _reconnect(self, cap: cv2.VideoCapture) -> cv2.VideoCapture:
        cap.release()
        for attempt in range(self.max_retries):
            delay = self.backoff_s * 2**attempt
            log.warning(
                "%s: stream dropped; reconnecting in %.1fs (%d/%d)",
                self.uri,
                delay,
                attempt + 1,
                self.max_retries,
            )
            time.sleep(delay)
            cap = cv2.VideoCapture(self.target)
            if cap.isOpened():
                return cap
        raise SourceUnavailable(
            f"video source {self.uri}: lost and not back after {self.max_retries} retries"
        )

    def read(self, since: str | None, limit: int) -> Iterator[Pulled]:
        cap = self._open()
        index = int(since) + 1 if since and not self.live else 0
        try:
            if index:
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            produced = 0
            while produced < limit:
                ok, pixels = cap.read()
                if not ok:
                    if not self.live:
                        return  # end of file
                    cap = self._reconnect(cap)
                    continue
                position = str(index) if not self.live else str(time.time_ns())
                data = encode_png(pixels)
                yield Pulled(
                    position,
                    _frame(
                        data, pixels, self.line_id, self.camera_id, f"{self.uri}#{index}", datetime.now(UTC)
                    ),
                )
                index += 1
                produced += 1
        finally:
            cap.release()


class SimulatedSource:
    """The simulated line: ``sim://NAME?seed=7&defect_rate=0.3&size=320``; position = part index."""

    def __init__(self, uri: str, line_id: str, camera_id: str) -> None:
        self.uri, self.line_id, self.camera_id = uri, line_id, camera_id
        params = {k: v[-1] for k, v in parse_qs(urlparse(uri).query).items()}
        known = {"seed": int, "defect_rate": float, "size": int, "jitter_px": int, "lighting_drift": float}
        unknown = set(params) - set(known)
        if unknown:
            raise ConfigError(
                f"simulated source {uri}: unknown parameters {sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            settings = SimulationSettings(**{k: known[k](v) for k, v in params.items()})  # type: ignore[arg-type]
        except ValueError as exc:
            raise ConfigError(f"simulated source {uri}: {exc}") from exc
        self.line = SimulatedLine(settings)

    def read(self, since: str | None, limit: int) -> Iterator[Pulled]:
        start = int(since) + 1 if since else 0
        for part in self.line.parts(start, limit):
            data = encode_png(part.image)
            frame = _frame(
                data, part.image, self.line_id, self.camera_id, f"{self.uri}#{part.index}", datetime.now(UTC)
            )
            yield Pulled(str(part.index), frame, truth=part.defect or "")


def open_source(uri: str, line_id: str, camera_id: str) -> FrameSource:
    """The source for a configured URI; ConfigError names the URI when unknown."""
    parsed = urlparse(uri)
    if parsed.scheme == "sim":
        return SimulatedSource(uri, line_id, camera_id)
    if parsed.scheme in STREAM_SCHEMES:
        return VideoSource(uri, line_id, camera_id, live=True)
    if parsed.scheme == "usb":
        if not parsed.path.isdigit():
            raise ConfigError(f"camera source {uri}: expected usb:<index>, e.g. usb:0")
        return VideoSource(int(parsed.path), line_id, camera_id, live=True)
    path = Path(parsed.path if parsed.scheme == "file" else uri)
    if path.is_dir():
        return FolderSource(path, line_id, camera_id)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        if not path.is_file():
            raise SourceUnavailable(f"video source {path}: file not found")
        return VideoSource(str(path), line_id, camera_id, live=False)
    raise ConfigError(
        f"source {uri!r}: not a folder, video file ({', '.join(sorted(VIDEO_SUFFIXES))}), "
        "sim://, rtsp://, http(s):// or usb:N"
    )
