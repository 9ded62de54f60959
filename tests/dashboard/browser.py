"""Headless Debian Chromium for the browser tests; skips with the reason when it is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dashboard import live_server


@contextmanager
def chromium() -> Iterator[Any]:
    if not live_server.CHROMIUM.exists():
        pytest.skip(f"{live_server.CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (the [dev] extra)")
    with live_server.chromium() as browser:
        yield browser
