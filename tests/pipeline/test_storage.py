"""The content-addressed image store: a digest names exactly one content, forever,
and nothing but a digest can become a path inside the store."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import StorageError
from pipeline.images import decode_image, encode_png
from pipeline.storage import HEATMAP_MAX_SIDE, ImageStore
from pipeline.types import Frame, sha256_hex


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_get_round_trip_returns_the_sha256(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = b"\x00\x01 some image bytes \xff" * 100
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data


def test_a_frame_is_stored_under_its_own_digest_and_one_without_bytes_is_refused(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = encode_png(np.full((16, 16, 3), 7, np.uint8))
    at = datetime(2026, 11, 28, tzinfo=UTC)
    frame = Frame(decode_image(data, "t"), "L1", "cam1", at, sha256_hex(data), "test://1", data)
    assert store.put_frame(frame) == frame.sha256 == store.put(data)
    assert store.get(frame.sha256) == data and len(all_files(tmp_path)) == 1
    bare = Frame(frame.pixels, "L1", "cam1", at, frame.sha256, "test://2")
    with pytest.raises(StorageError, match="frame from test://2: no encoded bytes"):
        store.put_frame(bare)


def test_object_path_layout(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(b"layout")
    expected = tmp_path / "objects" / digest[:2] / digest
    assert store.path_for(digest) == expected
    assert expected.read_bytes() == b"layout"
    assert all_files(tmp_path) == [expected]  # and nothing else: no temp files


def test_same_bytes_twice_is_one_file(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    first = store.put(b"same")
    mtime = store.path_for(first).stat().st_mtime_ns
    assert store.put(b"same") == first
    assert all_files(tmp_path) == [store.path_for(first)]
    assert store.path_for(first).stat().st_mtime_ns == mtime  # not rewritten


def test_different_bytes_are_different_objects(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digests = {store.put(bytes([i]) * 10) for i in range(20)}
    assert len(digests) == 20
    assert len(all_files(tmp_path)) == 20
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_empty_bytes_can_be_stored(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    digest = store.put(b"")
    assert digest == hashlib.sha256(b"").hexdigest() and store.get(digest) == b""


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "",
        "abc",
        "A" * 64,  # upper case is not the canonical hex form
        "g" * 64,
        "0" * 63,
        "0" * 65,
        pytest.param(
            "0" * 64 + "\n",
            id="trailing-newline",
        ),
        "../" + "0" * 61,
        "/" + "0" * 63,
    ],
)
def test_path_for_refuses_anything_but_a_lowercase_sha256(tmp_path: Path, name: str) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(StorageError, match="not a sha256 digest"):
        store.path_for(name)
    with pytest.raises(StorageError):
        store.get(name)


def test_get_of_an_unknown_digest_is_a_storage_error(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(StorageError) as info:
        ImageStore(tmp_path).get(digest)
    assert digest in str(info.value)


def test_put_heatmap_is_a_jpeg_of_the_map_size_coloured_by_scale(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    heatmap = np.zeros((30, 50), np.float32)
    heatmap[:, 25:] = 4.0  # right half at (and beyond) full scale
    heatmap[0, 49] = 1e30  # clipped, not wrapped around
    digest = store.put_heatmap(heatmap, scale=2.0)
    data = store.get(digest)
    assert data.startswith(b"\xff\xd8\xff")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.shape == (30, 50, 3)
    cold_b, _, cold_r = (int(v) for v in image[10, 5])
    hot_b, _, hot_r = (int(v) for v in image[10, 40])
    assert cold_b > cold_r  # JET: zero is blue
    assert hot_r > hot_b  # JET: full scale is red
    assert np.abs(image[0, 49].astype(int) - image[10, 40]).max() <= 12  # clipped: same red (JPEG)


def test_a_large_heatmap_is_stored_shrunk_keeping_where_it_is_hot(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    heatmap = np.zeros((3000, 4000), np.float32)  # a 12 MP camera's map
    heatmap[2000:2040, 3000:3040] = 2.0  # a small hot spot: 40 px, 10 stored pixels across
    data = store.get(store.put_heatmap(heatmap, 2.0))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (750, 1000, 3)  # shrunk by 4, within HEATMAP_MAX_SIDE, proportions kept
    hot_b, _, hot_r = (int(v) for v in image[505, 755])  # the spot's centre, at a quarter of its place
    cold_b, _, cold_r = (int(v) for v in image[100, 100])
    assert hot_r - hot_b > 80 and cold_b - cold_r > 80  # JET: full scale dark red, zero dark blue
    assert max(image.shape[:2]) <= HEATMAP_MAX_SIDE < 4000


def test_put_heatmap_is_content_addressed(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    heatmap = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    assert store.put_heatmap(heatmap, 1.0) == store.put_heatmap(heatmap.copy(), 1.0)
    assert store.put_heatmap(heatmap, 1.0) != store.put_heatmap(heatmap, 0.5)
    assert len(all_files(tmp_path)) == 2


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ImageStore(tmp_path)

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StorageError, match="cannot write"):
        store.put(b"doomed")
    monkeypatch.undo()
    assert all_files(tmp_path) == []
