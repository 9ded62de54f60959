"""The anomaly specialist on procedural parts: accuracy floor, regions, contract, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from sklearn.metrics import roc_auc_score

from inspectors import onnx_session
from inspectors.anomaly import CPU_BATCH, AnomalyInspector, Tiling, tile_boxes
from inspectors.model_card import ModelCard
from inspectors.onnx_session import check_single_runtime, choose_providers, open_model
from pipeline.decide import Thresholds
from pipeline.errors import ModelContractError, QCError
from pipeline.images import encode_png
from pipeline.simulate import DEFECT_KINDS, SimulationSettings, render_part
from pipeline.types import Frame, sha256_hex

SIM = SimulationSettings(size=256, seed=3, defect_rate=0.5)


def _frame(image: np.ndarray, camera: str = "cam1") -> Frame:
    data = encode_png(image)
    return Frame(image, "test", camera, datetime.now(UTC), sha256_hex(data), "test://", data)


def test_separates_defective_from_good_parts(anomaly_model_dir: Path) -> None:
    inspector = AnomalyInspector(anomaly_model_dir)
    parts = [render_part(SIM, i) for i in range(80)]
    _, scores = inspector.score_images([p.image for p in parts])
    truth = np.array([p.defect is not None for p in parts])
    assert 10 < truth.sum() < 70
    assert roc_auc_score(truth, scores) >= 0.95


def test_batches_are_sized_by_provider_and_do_not_change_scores(anomaly_model_dir: Path) -> None:
    on_cpu = AnomalyInspector(anomaly_model_dir)
    assert on_cpu.providers[0] != "CPUExecutionProvider" or on_cpu.batch_size == CPU_BATCH
    images = [render_part(SIM, i).image for i in range(5)]
    maps, scores = on_cpu.score_images(images)
    one_batch_maps, one_batch_scores = AnomalyInspector(anomaly_model_dir, batch_size=8).score_images(images)
    np.testing.assert_allclose(scores, one_batch_scores, rtol=1e-4)
    np.testing.assert_allclose(maps, one_batch_maps, rtol=1e-4, atol=1e-4)


def test_a_frame_scores_what_the_thresholds_were_calibrated_on(anomaly_model_dir: Path) -> None:
    # thresholds come from the model's own score; the frame-sized heat map must not change it
    inspector = AnomalyInspector(anomaly_model_dir)
    images = [render_part(SIM, i).image[:200] for i in range(4)]  # not the model's input size
    _, scores = inspector.score_images(images)
    found = [inspector.inspect([_frame(image)])[0][0] for image in images]
    assert [f.score for f in found] == pytest.approx(scores.tolist(), rel=1e-6)
    assert all(f.heatmap is not None and f.heatmap.shape == (200, 256) for f in found)


@pytest.mark.parametrize("kind", ["crack", "pit", "scratch"])
def test_region_lies_on_the_defect(anomaly_model_dir: Path, kind: str) -> None:
    inspector = AnomalyInspector(anomaly_model_dir, mm_per_px={"cam1": 0.2})
    part = render_part(SIM, 5, defect=kind)
    findings = inspector.inspect([_frame(part.image)])[0]
    image_finding = findings[0]
    assert image_finding.heatmap is not None and image_finding.heatmap.shape == part.mask.shape
    regions = [f.region for f in findings if f.region is not None]
    assert regions, f"no region found for a {kind}"
    top = regions[0]
    assert part.mask[top.y : top.y + top.h, top.x : top.x + top.w].any(), "strongest region misses the defect"
    assert top.length_mm == pytest.approx(max(top.w, top.h) * 0.2)


def test_each_region_reports_its_own_peak_and_size(anomaly_model_dir: Path) -> None:
    # an L-shaped region whose box holds a hotter, separate blob: each keeps its own peak and area
    inspector = AnomalyInspector(anomaly_model_dir, thresholds=Thresholds(review=1.0, fail=2.0))
    heatmap = np.zeros((100, 100), np.float32)
    heatmap[10:60, 10:20] = heatmap[50:60, 10:60] = 1.5
    heatmap[20:30, 30:40] = 9.0
    heatmap[90:92, 90:92] = 5.0  # 4 px: below min_region_px
    regions = inspector._regions(heatmap, mm_per_px=None)
    assert [(r.x, r.y, r.w, r.h, r.area_px, peak) for r, peak in regions] == [
        (30, 20, 10, 10, 100, 9.0),
        (10, 10, 50, 50, 900, 1.5),
    ]


def test_regions_of_a_shrunk_map_are_given_in_frame_pixels(anomaly_model_dir: Path) -> None:
    inspector = AnomalyInspector(anomaly_model_dir, thresholds=Thresholds(review=1.0, fail=2.0))
    heatmap = np.zeros((100, 100), np.float32)
    heatmap[20:30, 30:40] = 9.0
    heatmap[90:92, 90:92] = 5.0  # 4 map px, but 64 frame px: a region
    regions = inspector._regions(heatmap, mm_per_px=None, scale=(4.0, 4.0))
    assert [(r.x, r.y, r.w, r.h, r.area_px) for r, _ in regions] == [
        (120, 80, 40, 40, 1600),
        (360, 360, 8, 8, 64),
    ]


def test_a_large_frames_map_is_drawn_at_the_pictures_size_and_its_regions_at_the_frames(
    anomaly_model_dir: Path,
) -> None:
    inspector = AnomalyInspector(anomaly_model_dir)
    part = render_part(SIM, 7, defect="pit")
    size = (3072, 3072)  # 144 times the part's pixels: the map is drawn at a third of each side
    frame = _frame(cv2.resize(part.image, size, interpolation=cv2.INTER_LINEAR))
    large = inspector.inspect([frame])[0]
    assert large[0].heatmap is not None and large[0].heatmap.shape == (1024, 1024)
    assert float(large[0].heatmap.max()) == pytest.approx(large[0].score, rel=0.02)  # the model's map
    box = next(f.region for f in large if f.region is not None)
    mask = cv2.resize(part.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    assert mask[box.y : box.y + box.h, box.x : box.x + box.w].any(), "the region misses the defect"
    assert box.x + box.w <= 3072 and box.y + box.h <= 3072 and box.area_px > 16 * 16


def test_good_part_scores_below_every_defect_kind(anomaly_model_dir: Path) -> None:
    inspector = AnomalyInspector(anomaly_model_dir)
    good = [render_part(SIM, i, defect=None).image for i in range(100, 110)]
    bad = [render_part(SIM, 100 + i, defect=k).image for i, k in enumerate(DEFECT_KINDS)]
    _, good_scores = inspector.score_images(good)
    _, bad_scores = inspector.score_images(bad)
    assert np.median(bad_scores) > good_scores.max()


def test_model_card_records_parity_and_thresholds(anomaly_model_dir: Path) -> None:
    card = ModelCard.load(anomaly_model_dir)
    assert card.parity["max_rel_diff"] <= card.parity["tolerance"]
    assert 0 < card.thresholds.review <= card.thresholds.fail
    assert card.thresholds.calibrated_on == 24
    assert card.training["bank_size"] == 512 and len(card.training["data_digest"]) == 64


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_contract_mismatch_names_the_file(anomaly_model_dir: Path, tmp_path: Path) -> None:
    model = _copy(anomaly_model_dir, tmp_path)
    card = json.loads((model / "model.json").read_text())
    card["inputs"]["image"]["shape"] = [None, 3, 512, 512]
    (model / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelContractError, match=r"model(_cpu)?\.onnx: inputs expected .*512"):
        AnomalyInspector(model)


def test_replaced_onnx_file_is_refused(anomaly_model_dir: Path, tmp_path: Path) -> None:
    model = _copy(anomaly_model_dir, tmp_path)
    (model / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelContractError, match="sha256 differs"):
        AnomalyInspector(model)


def test_missing_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match="model card not found"):
        AnomalyInspector(tmp_path)


MISSING_LIBRARY, LOADING_LIBRARY = "libqcflow-no-such-library.so", "libc.so.6"


def test_providers_prefer_gpu_and_fall_back_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("inspectors.onnx_session.CUDA_DRIVER_LIBRARY", LOADING_LIBRARY)  # as on a GPU machine
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_tensorrt_keeps_its_engines_and_takes_every_batch_size_with_one_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, anomaly_model_dir: Path
) -> None:
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    asked: list[object] = []
    session = ort.InferenceSession

    def session_on_cpu(graph: bytes, options: ort.SessionOptions, providers: list[object]) -> object:
        asked.extend(providers)  # what a GPU machine's ONNX Runtime would be given; run here on the CPU
        return session(graph, options, providers=["CPUExecutionProvider"])

    monkeypatch.setenv("QCFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(onnx_session, "choose_providers", lambda: gpu)
    monkeypatch.setattr(ort, "InferenceSession", session_on_cpu)
    _, card = open_model(anomaly_model_dir)
    (name, options), *rest = asked
    assert name == "TensorrtExecutionProvider" and rest == gpu[1:]
    cache = tmp_path / "home" / "cache" / "tensorrt"
    assert cache.is_dir() and options["trt_engine_cache_path"] == str(cache.resolve())
    assert options["trt_engine_cache_enable"] is True and options["trt_timing_cache_enable"] is True
    _, channels, height, width = card.inputs["image"]["shape"]
    assert [options[f"trt_profile_{k}_shapes"] for k in ("min", "opt", "max")] == [
        f"image:{batch}x{channels}x{height}x{width}" for batch in (1, 16, 64)
    ]


def test_tensorrt_profiles_the_shapes_it_meets_where_more_than_the_batch_varies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, anomaly_model_dir: Path
) -> None:
    monkeypatch.setenv("QCFLOW_HOME", str(tmp_path))
    card = ModelCard.load(anomaly_model_dir)
    card.inputs["image"]["shape"] = [None, 3, None, None]
    ((_, options), cpu) = onnx_session.with_provider_options(
        ["TensorrtExecutionProvider", "CPUExecutionProvider"], card
    )
    assert cpu == "CPUExecutionProvider" and not any(k.startswith("trt_profile") for k in options)
    assert onnx_session.with_provider_options(["CPUExecutionProvider"], card) == ["CPUExecutionProvider"]


def test_gpu_providers_are_chosen_only_where_their_libraries_load(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr("inspectors.onnx_session.CUDA_DRIVER_LIBRARY", LOADING_LIBRARY)
    monkeypatch.setattr("inspectors.onnx_session.TENSORRT_LIBRARY", MISSING_LIBRARY)
    assert choose_providers(gpu_build) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr("inspectors.onnx_session.TENSORRT_LIBRARY", LOADING_LIBRARY)
    assert choose_providers(gpu_build) == gpu_build
    monkeypatch.setattr("inspectors.onnx_session.CUDA_DRIVER_LIBRARY", MISSING_LIBRARY)  # no NVIDIA driver
    assert choose_providers(gpu_build) == ["CPUExecutionProvider"]


def test_both_onnxruntime_builds_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.metadata.version", lambda dist: "1.0")
    with pytest.raises(QCError, match="both onnxruntime and onnxruntime-gpu"):
        check_single_runtime()


def test_inspection_never_imports_torch(anomaly_model_dir: Path) -> None:
    script = (
        "import sys\n"
        "from pipeline.simulate import SimulationSettings, render_part\n"
        "from pipeline.specialists import anomaly_scorer\n"
        f"s = anomaly_scorer({str(anomaly_model_dir)!r})\n"
        "s.score_images([render_part(SimulationSettings(), 0).image])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def _mosaic(defect_cell: int | None, kind: str = "pit") -> tuple[np.ndarray, tuple[int, int]]:
    """A 1024×1024 frame of 4×4 parts (256 px each); one cell may hold a defect."""
    cells = [render_part(SIM, 300 + i, defect=kind if i == defect_cell else None).image for i in range(16)]
    rows = [np.hstack(cells[r * 4 : r * 4 + 4]) for r in range(4)]
    cell = defect_cell or 0
    return np.vstack(rows), ((cell % 4) * 256, (cell // 4) * 256)


def test_tiles_cover_the_frame() -> None:
    boxes = tile_boxes(1000, 1500, Tiling(400, 0.25))
    covered = np.zeros((1000, 1500), bool)
    for x, y, w, h in boxes:
        assert (w, h) == (400, 400) and x + w <= 1500 and y + h <= 1000
        covered[y : y + h, x : x + w] = True
    assert covered.all()


def test_tiling_finds_the_defect_cell_of_a_large_frame(anomaly_model_dir: Path) -> None:
    good, _ = _mosaic(None)
    bad, (cx, cy) = _mosaic(9)
    tiled = AnomalyInspector(anomaly_model_dir, tiling={"cam1": (256, 0.0)})
    tiled_good, tiled_bad = (tiled.inspect([_frame(f)])[0] for f in (good, bad))
    assert tiled_bad[0].score > tiled_good[0].score
    top = next(f.region for f in tiled_bad if f.region is not None)
    assert cx <= top.x + top.w / 2 <= cx + 256 and cy <= top.y + top.h / 2 <= cy + 256
    assert tiled_bad[0].heatmap is not None and tiled_bad[0].heatmap.shape == bad.shape[:2]
