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


def test_a_version_folder_appears_only_when_complete(tmp_path: Path) -> None:
    with versions.version_folder(tmp_path, "m", "abc") as new:
        (new.folder / "model.json").write_text("{}")
        assert not new.final.exists()
    assert (new.final / "model.json").is_file() and not new.folder.exists()
    with (
        pytest.raises(RuntimeError, match="export failed"),
        versions.version_folder(tmp_path, "m", "abc") as failed,
    ):
        (failed.folder / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export failed")
    assert [p.name for p in (tmp_path / "m").iterdir()] == [new.version]
