"""Content-addressed image store: bytes live at ``objects/<sha[:2]>/<sha>``.

Writing the same bytes twice is a no-op, a name can never point at other
content, and a path can be derived from a digest alone (no traversal: the
digest is validated before it becomes a path).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import StorageError
from pipeline.images import encode_jpeg, jet_colours
from pipeline.types import Frame, sha256_hex

_SHA256 = re.compile(r"[0-9a-f]{64}")
HEATMAP_MAX_SIDE = 1024  # px on the stored heat map picture's longer side, at the most


def heatmap_step(height: int, width: int) -> int:
    """The whole step by which a heat map of this size is shrunk to ``HEATMAP_MAX_SIDE`` (1: not at all);
    whole steps, because OpenCV averages those fast."""
    return -(-max(height, width) // HEATMAP_MAX_SIDE)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise StorageError(f"not a sha256 digest: {sha256[:80]!r}")
        return self.root / "objects" / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store bytes; returns their sha256."""
        return self._write(data, sha256_hex(data))

    def put_frame(self, frame: Frame) -> str:
        """Store a frame's encoded bytes under its sha256, which the frame checked when it was made
        (a 12 MP frame's bytes take milliseconds to hash)."""
        if not frame.encoded:
            raise StorageError(f"frame from {frame.source_uri}: no encoded bytes to store")
        return self._write(frame.encoded, frame.sha256)

    def _write(self, data: bytes, digest: str) -> str:
        path = self.path_for(digest)
        if path.exists():
            return digest
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: readers never see a half-written file
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"image store {self.root}: cannot write {digest}: {exc}") from exc
        return digest

    def get(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"image store {self.root}: no object {sha256}") from exc

    def remove(self, sha256: str) -> int:
        """Delete an object; returns the bytes freed (0 when it was not there)."""
        path = self.path_for(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(f"image store {self.root}: cannot remove {sha256}: {exc}") from exc
        return size

    def size_of(self, sha256: str) -> int:
        """An object's size in bytes (0 when it is not there)."""
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    def put_heatmap(self, heatmap: np.ndarray, scale: float) -> str:
        """A colour heat map (JET, JPEG) where ``scale`` maps to full red; returns its sha256.

        The heat map is a picture for people: the scores themselves are in the findings, and the
        regions were found before. It is shrunk by a whole step to at most
        ``HEATMAP_MAX_SIDE`` px on its longer side (each stored pixel the mean of a block; the
        dashboard stretches it over the frame), so a high-resolution camera does not pay for colouring
        and encoding every pixel.
        """
        height, width = heatmap.shape
        step = heatmap_step(height, width)
        if step > 1:
            size = (max(1, width // step), max(1, height // step))
            heatmap = cv2.resize(heatmap, size, interpolation=cv2.INTER_AREA)
        scale = max(scale, 1e-12)
        levels = cv2.convertScaleAbs(np.clip(heatmap, 0.0, scale), alpha=255.0 / scale)  # 0..255
        return self.put(encode_jpeg(jet_colours(levels)))
