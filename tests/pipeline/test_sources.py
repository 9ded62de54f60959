"""Frame sources: the right source for each URI, in order, resumable, and never
stopping a batch for one bad file.

The watermark (``position``) is stored after a frame is logged and handed back as
``since`` on the next run; a source that repeats or skips frames across runs
would double-count or miss parts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.errors import ConfigError, SourceUnavailable
from pipeline.simulate import SimulationSettings, choose_defect, render_part
from pipeline.sources import FolderSource, Pulled, SimulatedSource, VideoSource, open_source

LINE, CAM = "press1", "top"
T0 = 1_700_000_000  # a fixed epoch second for file mtimes


def write_png(path: Path, value: int, mtime: int, size: int = 24) -> bytes:
    """A small distinct image at ``path`` with the given mtime; returns the file's bytes."""
    image = np.full((size, size, 3), value, np.uint8)
    image[2:6, 2:6] = (255 - value, value // 2, 7)
    assert cv2.imwrite(str(path), image)
    os.utime(path, (mtime, mtime))
    return path.read_bytes()


def names(pulled: list[Pulled]) -> list[str]:
    return [Path(p.frame.source_uri).name for p in pulled if p.frame is not None]


# --- open_source dispatch ------------------------------------------------------------------------


def test_sim_uri_gives_a_simulated_source() -> None:
    source = open_source("sim://demo?seed=7&size=96", LINE, CAM)
    assert isinstance(source, SimulatedSource)
    assert source.uri == "sim://demo?seed=7&size=96"
    assert source.line.settings == SimulationSettings(seed=7, size=96)


def test_folder_path_gives_a_folder_source(tmp_path: Path) -> None:
    source = open_source(str(tmp_path), LINE, CAM)
    assert isinstance(source, FolderSource)
    assert source.folder == tmp_path and source.uri == str(tmp_path)


def test_file_uri_to_a_folder_gives_a_folder_source(tmp_path: Path) -> None:
    source = open_source(f"file://{tmp_path}", LINE, CAM)
    assert isinstance(source, FolderSource) and source.folder == tmp_path


def test_video_file_gives_a_non_live_video_source(tmp_path: Path) -> None:
    video = make_video(tmp_path / "clip.avi", 2)
    source = open_source(str(video), LINE, CAM)
    assert isinstance(source, VideoSource)
    assert source.live is False and source.target == str(video)


def test_missing_video_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="not-there.mp4"):
        open_source(str(tmp_path / "not-there.mp4"), LINE, CAM)


@pytest.mark.parametrize("uri", ["rtsp://10.0.0.5/stream1", "http://cam.local/mjpg"])
def test_stream_urls_give_live_video_sources(uri: str) -> None:
    source = open_source(uri, LINE, CAM)  # constructing does not connect
    assert isinstance(source, VideoSource)
    assert source.live is True and source.uri == uri


def test_usb_index_gives_a_live_camera_source() -> None:
    source = open_source("usb:2", LINE, CAM)
    assert isinstance(source, VideoSource)
    assert source.target == 2 and source.live is True and source.uri == "usb:2"


@pytest.mark.parametrize("uri", ["usb:x", "usb:", "usb:-1"])
def test_usb_without_a_numeric_index_is_a_config_error(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_source(uri, LINE, CAM)
    assert uri in str(info.value) and "usb:<index>" in str(info.value)


@pytest.mark.parametrize("uri", ["ftp://host/frames", "/no/such/folder", "frames.txt"])
def test_unknown_source_is_a_config_error_naming_the_uri(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_source(uri, LINE, CAM)
    assert repr(uri) in str(info.value)
    assert "sim://" in str(info.value)  # says what would have been accepted


def test_sim_with_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        open_source("sim://demo?seed=1&speed=3", LINE, CAM)
    message = str(info.value)
    assert "sim://demo?seed=1&speed=3" in message and "'speed'" in message
    assert "'defect_rate'" in message  # lists the known ones


@pytest.mark.parametrize("query", ["seed=abc", "defect_rate=2", "size=10"])
def test_sim_with_bad_parameter_value_is_a_config_error(query: str) -> None:
    with pytest.raises(ConfigError, match="simulated source sim://demo"):
        open_source(f"sim://demo?{query}", LINE, CAM)


# --- FolderSource --------------------------------------------------------------------------------


def test_folder_reads_images_oldest_first_ignoring_other_files(tmp_path: Path) -> None:
    write_png(tmp_path / "c.png", 30, T0 + 1)
    write_png(tmp_path / "a.png", 10, T0 + 3)
    write_png(tmp_path / "b.png", 20, T0 + 2)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image-like name
    pulled = list(FolderSource(tmp_path, LINE, CAM).read(None, 100))
    assert names(pulled) == ["c.png", "b.png", "a.png"]
    assert all(p.error is None and p.truth is None for p in pulled)
    first = pulled[0].frame
    assert first is not None
    assert (first.line_id, first.camera_id) == (LINE, CAM)
    assert first.captured_at.timestamp() == T0 + 1 and first.captured_at.utcoffset() is not None


def test_same_mtime_is_ordered_by_name(tmp_path: Path) -> None:
    for name in ("z.png", "m.png", "a.png"):
        write_png(tmp_path / name, 50, T0)
    assert names(list(FolderSource(tmp_path, LINE, CAM).read(None, 10))) == ["a.png", "m.png", "z.png"]


def test_folder_resumes_after_the_last_position(tmp_path: Path) -> None:
    source = FolderSource(tmp_path, LINE, CAM)
    write_png(tmp_path / "a.png", 10, T0 + 1)
    write_png(tmp_path / "b.png", 20, T0 + 2)
    first = list(source.read(None, 100))
    assert names(first) == ["a.png", "b.png"]
    watermark = first[-1].position

    assert list(source.read(watermark, 100)) == []  # nothing new: nothing read again
    write_png(tmp_path / "c.png", 30, T0 + 3)
    write_png(tmp_path / "d.png", 40, T0 + 4)
    second = list(source.read(watermark, 100))
    assert names(second) == ["c.png", "d.png"]


def test_folder_respects_limit_and_continues_from_there(tmp_path: Path) -> None:
    for i in range(5):
        write_png(tmp_path / f"f{i}.png", 10 * i, T0 + i)
    source = FolderSource(tmp_path, LINE, CAM)
    batch = list(source.read(None, 2))
    assert names(batch) == ["f0.png", "f1.png"]
    batch = list(source.read(batch[-1].position, 2))
    assert names(batch) == ["f2.png", "f3.png"]
    assert names(list(source.read(batch[-1].position, 2))) == ["f4.png"]


def test_frame_identity_is_the_file_bytes(tmp_path: Path) -> None:
    data = write_png(tmp_path / "a.png", 77, T0)
    (pulled,) = list(FolderSource(tmp_path, LINE, CAM).read(None, 10))
    assert pulled.frame is not None
    assert pulled.frame.encoded == data
    assert pulled.frame.sha256 == hashlib.sha256(data).hexdigest()
    assert pulled.frame.source_uri == str(tmp_path / "a.png")
    assert np.array_equal(pulled.frame.pixels, cv2.imread(str(tmp_path / "a.png")))


def test_grey_jpeg_is_read_as_three_channels(tmp_path: Path) -> None:
    grey = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    assert cv2.imwrite(str(tmp_path / "g.JPG"), grey)
    (pulled,) = list(FolderSource(tmp_path, LINE, CAM).read(None, 10))
    assert pulled.frame is not None and pulled.frame.pixels.shape == (32, 32, 3)


def test_corrupt_and_empty_files_are_reported_and_do_not_stop_the_batch(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 10, T0 + 1)
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    os.utime(tmp_path / "b.png", (T0 + 2, T0 + 2))
    write_png(tmp_path / "c.png", 30, T0 + 3)
    (tmp_path / "d.jpg").write_bytes(b"")
    os.utime(tmp_path / "d.jpg", (T0 + 4, T0 + 4))
    write_png(tmp_path / "e.png", 50, T0 + 5)

    pulled = list(FolderSource(tmp_path, LINE, CAM).read(None, 100))
    assert len(pulled) == 5
    assert names(pulled) == ["a.png", "c.png", "e.png"]
    corrupt, empty = pulled[1], pulled[3]
    assert corrupt.frame is None and corrupt.error is not None
    assert str(tmp_path / "b.png") in corrupt.error and "not a decodable image" in corrupt.error
    assert empty.frame is None and empty.error is not None
    assert str(tmp_path / "d.jpg") in empty.error and "empty" in empty.error
    # bad files still advance the watermark, so they are not retried forever
    assert corrupt.position.endswith(":b.png") and empty.position.endswith(":d.jpg")
    assert list(FolderSource(tmp_path, LINE, CAM).read(empty.position, 100))[0].frame is not None


def test_image_too_small_for_a_frame_is_reported_not_raised(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 10, T0 + 1)
    write_png(tmp_path / "tiny.png", 20, T0 + 2, size=4)
    write_png(tmp_path / "c.png", 30, T0 + 3)
    pulled = list(FolderSource(tmp_path, LINE, CAM).read(None, 100))
    assert names(pulled) == ["a.png", "c.png"]
    assert pulled[1].error is not None and "tiny.png" in pulled[1].error


def test_missing_folder_is_unavailable(tmp_path: Path) -> None:
    source = FolderSource(tmp_path / "gone", LINE, CAM)
    with pytest.raises(SourceUnavailable) as info:
        list(source.read(None, 10))
    assert str(tmp_path / "gone") in str(info.value)


# --- VideoSource on a file -----------------------------------------------------------------------

N_FRAMES = 12


def make_video(path: Path, frames: int = N_FRAMES) -> Path:
    """A 64×64 MJPG .avi whose frame i is uniformly brighter than frame i-1."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    for i in range(frames):
        writer.write(np.full((64, 64, 3), 10 + 20 * i, np.uint8))
    writer.release()
    return path


def brightness(pulled: Pulled) -> int:
    assert pulled.frame is not None
    return int(round(pulled.frame.pixels.mean()))


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.avi")


def test_video_reads_every_frame_with_index_positions(video: Path) -> None:
    pulled = list(open_source(str(video), LINE, CAM).read(None, 100))
    assert [p.position for p in pulled] == [str(i) for i in range(N_FRAMES)]
    levels = [brightness(p) for p in pulled]
    assert levels == sorted(levels) and len(set(levels)) == N_FRAMES  # in order, none repeated
    for i, p in enumerate(pulled):
        assert p.frame is not None
        assert p.frame.pixels.shape == (64, 64, 3)
        assert p.frame.source_uri == f"{video}#{i}"
        assert p.frame.sha256 == hashlib.sha256(p.frame.encoded).hexdigest()


def test_video_resumes_after_since(video: Path) -> None:
    source = open_source(str(video), LINE, CAM)
    everything = list(source.read(None, 100))
    rest = list(source.read("4", 100))
    assert [p.position for p in rest] == [str(i) for i in range(5, N_FRAMES)]
    # the resumed frames are the same frames, not just the same numbers
    assert [p.frame.sha256 for p in rest] == [p.frame.sha256 for p in everything[5:]]  # type: ignore[union-attr]


def test_video_limit_and_resume_from_position_zero(video: Path) -> None:
    source = open_source(str(video), LINE, CAM)
    batch = list(source.read(None, 3))
    assert [p.position for p in batch] == ["0", "1", "2"]
    assert [p.position for p in source.read("0", 2)] == ["1", "2"]
    assert list(source.read(str(N_FRAMES - 1), 10)) == []  # at the end: nothing more


def test_unopenable_video_is_unavailable(tmp_path: Path) -> None:
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"not a video at all")
    source = open_source(str(bad), LINE, CAM)
    with pytest.raises(SourceUnavailable, match="broken.avi"):
        list(source.read(None, 5))


# --- SimulatedSource -----------------------------------------------------------------------------

SIM_URI = "sim://line?seed=11&defect_rate=0.5&size=96"


def test_simulated_source_is_deterministic() -> None:
    a = [p.frame.sha256 for p in SimulatedSource(SIM_URI, LINE, CAM).read(None, 6)]  # type: ignore[union-attr]
    b = [p.frame.sha256 for p in SimulatedSource(SIM_URI, LINE, CAM).read(None, 6)]  # type: ignore[union-attr]
    assert a == b
    assert len(set(a)) == 6  # and the parts differ from each other
    other = SimulatedSource("sim://line?seed=12&defect_rate=0.5&size=96", LINE, CAM)
    assert [p.frame.sha256 for p in other.read(None, 6)] != a  # type: ignore[union-attr]


def test_simulated_source_resumes_after_since() -> None:
    source = SimulatedSource(SIM_URI, LINE, CAM)
    first = list(source.read(None, 8))
    assert [p.position for p in first] == [str(i) for i in range(8)]
    rest = list(source.read("4", 3))
    assert [p.position for p in rest] == ["5", "6", "7"]
    assert [p.frame.sha256 for p in rest] == [p.frame.sha256 for p in first[5:8]]  # type: ignore[union-attr]
    assert rest[0].frame is not None and rest[0].frame.source_uri == f"{SIM_URI}#5"


def test_simulated_truth_matches_the_line_decision() -> None:
    settings = SimulationSettings(seed=11, defect_rate=0.5, size=96)
    pulled = list(SimulatedSource(SIM_URI, LINE, CAM).read(None, 16))
    expected = [choose_defect(settings, i) or "" for i in range(16)]
    assert [p.truth for p in pulled] == expected
    assert "" in expected and any(expected)  # both good and defective parts were covered


def test_simulated_frame_is_the_rendered_part() -> None:
    settings = SimulationSettings(seed=11, defect_rate=0.5, size=96)
    (pulled,) = list(SimulatedSource(SIM_URI, LINE, CAM).read("2", 1))
    assert pulled.frame is not None
    assert np.array_equal(pulled.frame.pixels, render_part(settings, 3).image)
    decoded = cv2.imdecode(np.frombuffer(pulled.frame.encoded, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decoded, pulled.frame.pixels)  # lossless encoding
