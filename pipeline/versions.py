"""Version names for fitted models: when it was fitted and a digest of what it saw."""

from __future__ import annotations

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
