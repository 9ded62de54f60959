"""The CPU graph: int8 shortlist nearest-neighbour search, re-ranked exactly."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inspectors import onnx_session
from inspectors.anomaly import AnomalyInspector
from inspectors.model_card import CPU_ONNX_FILE, ONNX_FILE, ModelCard
from inspectors.onnx_session import bank_levels_for
from inspectors.preprocess import to_model_input
from inspectors.training.cpu_graph import write_cpu_graph
from pipeline.errors import ModelContractError
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import sha256_hex


def _nearest_graph(path: Path, bank: np.ndarray) -> None:
    """patches (P×D) -> squared distance to the nearest bank row, as the PatchCore export writes it."""
    d = bank.shape[1]
    nodes = [
        helper.make_node("Gemm", ["f", "bank", "bank_sq"], ["partial"], alpha=-2.0, transB=1),
        helper.make_node("ReduceMin", ["partial"], ["nearest"], axes=[-1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "nearest",
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, [None, d])],
        [helper.make_tensor_value_info("nearest", TensorProto.FLOAT, [None])],
        [numpy_helper.from_array(bank, "bank"), numpy_helper.from_array((bank**2).sum(1), "bank_sq")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _run(path: Path, f: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"f": f})[0] + (f**2).sum(1)


def _case(tmp_path: Path, spread: float, entries: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Squared nearest distances from the CPU graph and the true ones, on a bank of 64 clusters."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(64, 48)).astype(np.float32) * 4
    bank = np.repeat(centres, 32, axis=0)[rng.permutation(2048)[:entries]]
    bank += spread * rng.normal(size=bank.shape).astype(np.float32)
    f = (centres[rng.integers(0, 64, 500)] + rng.normal(size=(500, 48)) * 0.5).astype(np.float32)
    _nearest_graph(tmp_path / "exact.onnx", bank)
    write_cpu_graph(tmp_path / "exact.onnx", tmp_path / "cpu.onnx")
    truth = ((f[:, None, :] - bank[None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(_run(tmp_path / "exact.onnx", f), truth, rtol=1e-3, atol=1e-3)
    return _run(tmp_path / "cpu.onnx", f), truth


@pytest.mark.parametrize(
    "entries", [2048, 2000, 5]
)  # groups of 64; of 32 with padding; smaller than a shortlist
def test_shortlist_search_gives_the_exact_nearest_distance(tmp_path: Path, entries: int) -> None:
    shortlist, truth = _case(tmp_path, spread=1.0, entries=entries)
    np.testing.assert_allclose(shortlist, truth, rtol=1e-3, atol=1e-3)


def test_among_copies_int8_cannot_tell_apart_the_error_stays_within_its_rounding(tmp_path: Path) -> None:
    # 32 near-copies of every bank entry, closer together than int8 resolves: the shortlist may miss
    # the nearest copy, but reports an exact distance to another one, never below the truth
    shortlist, truth = _case(tmp_path, spread=1e-3)
    assert (shortlist >= truth - 1e-3).all()
    assert (shortlist <= truth * 1.01).all()


def test_features_far_from_the_bank_mean_do_not_overflow_the_int8_product(tmp_path: Path) -> None:
    # Patches near one of two opposite clusters: most quantised features are near 255 and most bank
    # levels near ±127 at 8 bits, so on x86 CPUs without VNNI the product's 16-bit pair sums saturate,
    # the cluster's entries look alike and the shortlist misses the nearest one (a fifth of the patches).
    rng = np.random.default_rng(1)
    bank = np.concatenate([np.full((512, 48), 3.0), np.full((512, 48), -3.0)]).astype(np.float32)
    bank += rng.normal(size=bank.shape).astype(np.float32)
    f = (3.0 + rng.normal(size=(400, 48))).astype(np.float32)
    _nearest_graph(tmp_path / "exact.onnx", bank)
    write_cpu_graph(tmp_path / "exact.onnx", tmp_path / "cpu.onnx")
    truth = ((f[:, None, :] - bank[None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(_run(tmp_path / "cpu.onnx", f), truth, rtol=1e-3, atol=1e-3)


def test_a_graph_without_a_bank_search_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelContractError, match=r"plain\.onnx: no nearest-neighbour Gemm"):
        write_cpu_graph(tmp_path / "plain.onnx", tmp_path / "cpu.onnx")


def test_a_bank_gemm_without_its_minimum_is_refused(tmp_path: Path) -> None:
    bank = np.ones((4, 3), np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["f", "bank", "bank_sq"], ["partial"], alpha=-2.0, transB=1)],
        "no-min",
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("partial", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(bank, "bank"), numpy_helper.from_array((bank**2).sum(1), "bank_sq")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "g.onnx"))
    with pytest.raises(ModelContractError, match=r"g\.onnx: no nearest-neighbour Gemm and ReduceMin"):
        write_cpu_graph(tmp_path / "g.onnx", tmp_path / "cpu.onnx")


def test_the_cpu_provider_loads_the_cpu_graph_and_scores_like_the_exact_one(
    anomaly_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = ModelCard.load(anomaly_model_dir)
    assert card.cpu_onnx_sha256 == sha256_hex((anomaly_model_dir / CPU_ONNX_FILE).read_bytes())
    assert card.parity["cpu_graph_max_rel_diff"] <= card.parity["tolerance"]
    with caplog.at_level(logging.INFO, logger="inspectors.onnx_session"):
        inspector = AnomalyInspector(anomaly_model_dir)
    assert f"{CPU_ONNX_FILE} (" in caplog.text
    images = [render_part(SimulationSettings(size=256, seed=9), i).image for i in range(6)]
    maps, scores = inspector.score_images(images)
    exact = ort.InferenceSession(str(anomaly_model_dir / ONNX_FILE), providers=["CPUExecutionProvider"])
    exact_map, exact_score = exact.run(None, {"image": to_model_input(images, card.preprocessing)})
    np.testing.assert_allclose(scores, exact_score, rtol=1e-4)
    np.testing.assert_allclose(maps, exact_map[:, 0], rtol=1e-4, atol=1e-4 * float(exact_score.max()))


def test_a_replaced_cpu_graph_is_refused(anomaly_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(anomaly_model_dir, model)
    (model / CPU_ONNX_FILE).write_bytes(b"not a model")
    with pytest.raises(ModelContractError, match=r"model_cpu\.onnx: sha256 differs"):
        AnomalyInspector(model)


def _levels(graph: bytes) -> dict[str, np.ndarray]:
    model = onnx.load_model_from_string(graph)
    return {
        i.name: numpy_helper.to_array(i)
        for i in model.graph.initializer
        if i.name.endswith(("bank_q", "bank_zero"))
    }


def test_bank_levels_turn_signed_and_back_with_the_same_values(anomaly_model_dir: Path) -> None:
    stored = (anomaly_model_dir / CPU_ONNX_FILE).read_bytes()
    assert bank_levels_for(stored, signed=False) is stored  # written as uint8
    signed = bank_levels_for(stored, signed=True)
    before, after = _levels(stored), _levels(signed)
    assert {a.dtype for a in before.values()} == {np.dtype(np.uint8)}
    assert {a.dtype for a in after.values()} == {np.dtype(np.int8)}
    for name in before:
        if name.endswith("bank_q"):  # level minus zero point: what the product multiplies
            zero = name.removesuffix("bank_q") + "bank_zero"
            np.testing.assert_array_equal(
                before[name].astype(np.int16) - before[zero].astype(np.int16)[None],
                after[name].astype(np.int16) - after[zero].astype(np.int16)[None],
            )
    assert bank_levels_for(signed, signed=False) == stored


@pytest.mark.parametrize("int8_dot_product", [True, False])
def test_the_loader_gives_the_bank_the_form_this_cpu_multiplies_best(
    anomaly_model_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    int8_dot_product: bool,
) -> None:
    monkeypatch.setattr(onnx_session, "has_int8_dot_product", lambda: int8_dot_product)
    with caplog.at_level(logging.INFO, logger="inspectors.onnx_session"):
        AnomalyInspector(anomaly_model_dir)
    form = "int8" if int8_dot_product else "uint8"
    assert f"{CPU_ONNX_FILE} ({form} bank) on CPUExecutionProvider" in caplog.text


def _skew(path: Path) -> None:
    """A graph whose bank norms are off: its distances, and so its maps, differ from torch."""
    model = onnx.load(str(path))
    bank_sq = next(i for i in model.graph.initializer if i.name == "bank_sq")
    bank_sq.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bank_sq) * 1.5, "bank_sq"))
    onnx.save(model, str(path))


def _skewed_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str) -> Path:
    """Fit a small model with ``writer`` (a function of fit_anomaly writing a graph) skewing its output."""
    from inspectors.training import fit_anomaly
    from inspectors.training.patchcore import PatchCoreSettings

    write = getattr(fit_anomaly, writer)

    def skewed(source: object, out_path: Path) -> None:
        write(source, out_path)
        _skew(out_path)

    monkeypatch.setattr(fit_anomaly, writer, skewed)
    request = fit_anomaly.request_from_simulation(
        SimulationSettings(size=128, seed=4),
        "skewed",
        n_fit=6,
        n_calibration=4,
        settings=PatchCoreSettings(bank_size=64),
    )
    return fit_anomaly.fit_anomaly(request, tmp_path)[0]


def test_a_cpu_graph_that_differs_from_torch_is_left_out_and_the_cpu_runs_the_exact_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        model_dir = _skewed_fit(tmp_path, monkeypatch, "write_cpu_graph")
    assert "model_cpu.onnx differs from torch" in caplog.text and "left out" in caplog.text
    assert not (model_dir / CPU_ONNX_FILE).exists()
    card = ModelCard.load(model_dir)
    assert card.cpu_onnx_sha256 is None
    assert card.parity["cpu_graph_max_rel_diff"] > card.parity["tolerance"] >= card.parity["max_rel_diff"]
    assert card.thresholds.fail > 0  # calibrated on the exact graph
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="inspectors.onnx_session"):
        AnomalyInspector(model_dir)
    assert f"{ONNX_FILE} on CPUExecutionProvider" in caplog.text


def test_a_graph_that_differs_from_torch_is_refused_and_leaves_no_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelContractError, match=r"model\.onnx: differs from torch beyond tolerance"):
        _skewed_fit(tmp_path, monkeypatch, "export_onnx")
    assert not any((tmp_path / "skewed").iterdir()), "a refused export leaves nothing behind"
