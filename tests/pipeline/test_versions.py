from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import versions


class _FrozenClock:
    @staticmethod
    def now(tz: object) -> datetime:
        return datetime(2026, 11, 27, 7, 30, 5, tzinfo=UTC)


def test_a_second_fit_in_the_same_second_gets_its_own_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(versions, "datetime", _FrozenClock)
    first = versions.new_version(tmp_path, "abcdef0123")
    assert first == "20261127T073005Z-abcdef01"
    (tmp_path / first).mkdir()
    (tmp_path / f".partial-{first}-2").mkdir()  # a fit still being written holds its name too
    assert versions.new_version(tmp_path, "abcdef0123") == f"{first}-3"
