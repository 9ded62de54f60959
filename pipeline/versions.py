"""Fitted models' versions: named by when they were fitted and a digest of what they saw, and
written so that a version folder is either complete or absent."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from pathlib import Path


def new_version(folder: Path, digest: str) -> str:
    """``<UTC time>-<digest[:8]>``, with ``-2``, ``-3``… when a fit in the same second took the name."""
    base = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}"
    for n in count(1):
        version = base if n == 1 else f"{base}-{n}"
        if not (folder / version).exists() and not (folder / f".partial-{version}").exists():
            return version
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class NewVersion:
    version: str
    folder: Path  # where to write: ``.partial-<version>`` until the block ends
    final: Path  # ``<models_root>/<name>/<version>``, once complete


@contextlib.contextmanager
def version_folder(models_root: Path, name: str, digest: str) -> Iterator[NewVersion]:
    """A new version's folder: renamed into place when the block ends, removed if it raises."""
    version = new_version(models_root / name, digest)
    final = models_root / name / version
    new = NewVersion(version, final.with_name(f".partial-{version}"), final)
    new.folder.mkdir(parents=True)
    try:
        yield new
    except BaseException:
        shutil.rmtree(new.folder, ignore_errors=True)
        raise
    new.folder.rename(final)
