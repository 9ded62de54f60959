"""The CPU copy of an exported anomaly graph: the nearest-neighbour search as an 8-bit shortlist,
re-ranked in float32.

About half of a PatchCore graph's CPU time is one Gemm, every patch against every bank entry. In the
CPU copy that product runs in 8 bits (ONNX Runtime's ``DynamicQuantizeMatMul``: features quantised per
call, the bank once, per entry) on features centred on the bank's mean, only to pick each patch's
``SHORTLIST`` nearest candidates; the distances to those few are then computed exactly. The result is
the float32 graph's whenever the true nearest entry is among the candidates, and otherwise the exact
distance to another entry the int8 product could not rank apart from it, never a smaller one. A
coreset's entries are spread out, so misses are rare: none in any map pixel of 146 magnetic-tile test
images with banks of 4,096 and 16,384. The export's parity check compares both graphs with torch.

The shortlist is picked in two short steps rather than one TopK over the whole bank, which took as long
as the int8 product: the bank is cut into groups of about √K entries (padded with entries no patch is
near), each group's smallest approximation is taken (a ReduceMin), and the ``SHORTLIST`` candidates
are chosen among the ``SHORTLIST`` groups with the smallest of those. That is the same shortlist: the
``SHORTLIST`` smallest approximations lie in at most that many groups, whose minima are among the
``SHORTLIST`` smallest.

``com.microsoft`` operators run on the CPU provider only, so GPU providers keep ``model.onnx``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from pipeline.errors import ModelContractError

SHORTLIST = 8  # candidates re-ranked per patch: 4 missed 1 in 500 on a clustered test bank, 8 none
# The bank is stored as uint8 levels around a zero point of 128, the form every CPU multiplies without
# saturating; the loader turns them into int8 on CPUs with an 8-bit dot product, where that runs faster
# (``onnx_session.bank_levels_for``).
_BANK_ZERO = 128
_PREFIX = "cpu_search_"
_FAR = 1e30  # |b|² of a padding entry: never among the nearest


def write_cpu_graph(onnx_path: Path, out_path: Path) -> None:
    """Rewrite each of ``onnx_path``'s bank Gemms and their ReduceMins into the int8 shortlist search
    (a model with a coarse descriptor has two banks)."""
    model = onnx.load(str(onnx_path))
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    initializers = {i.name: i for i in graph.initializer}
    searches = _bank_searches(graph, initializers, onnx_path)
    for n, (gemm, reduce_min) in enumerate(searches):
        _rewrite_search(graph, initializers, gemm, reduce_min, opset, f"{_PREFIX}{n}_", onnx_path)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out_path))


def _rewrite_search(
    graph: onnx.GraphProto,
    initializers: dict[str, onnx.TensorProto],
    gemm: onnx.NodeProto,
    reduce_min: onnx.NodeProto,
    opset: int,
    prefix: str,
    where: Path,
) -> None:
    features, bank_name, bank_sq_name = gemm.input
    if any(bank_name in n.input or bank_sq_name in n.input for n in graph.node if n is not gemm):
        raise ModelContractError(f"{where}: the memory bank feeds more than the nearest-neighbour Gemm")
    bank = numpy_helper.to_array(initializers[bank_name]).astype(np.float32)
    group = _group_size(bank.shape[0])
    groups = -(-bank.shape[0] // group)
    padding = groups * group - bank.shape[0]  # entries no patch can be near: zero, with a huge |b|²
    mean = bank.mean(axis=0)
    bank = np.concatenate([bank, np.zeros((padding, bank.shape[1]), np.float32)])
    bank_sq = np.concatenate(
        [
            numpy_helper.to_array(initializers[bank_sq_name]).astype(np.float32),
            np.full(padding, _FAR, np.float32),
        ]
    )
    centred = -2.0 * (bank - mean).T  # D × K, so that the product is |b - μ|² - 2 (f - μ)·(b - μ)
    scale = np.abs(centred).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    bank_sq_centred = ((bank - mean) ** 2).sum(axis=1)
    bank_sq_centred[len(bank) - padding :] = _FAR
    kept = min(SHORTLIST, groups)
    _replace(initializers[bank_name], bank)
    _replace(initializers[bank_sq_name], bank_sq)
    constants = {
        "mean": mean,
        "bank_q": (np.clip(np.round(centred / scale), -127, 127) + _BANK_ZERO).astype(np.uint8),
        "bank_scale": scale.astype(np.float32),
        "bank_zero": np.full(bank.shape[0], _BANK_ZERO, np.uint8),
        "bank_sq_centred": bank_sq_centred.astype(np.float32),
        "groups_shape": np.array([-1, groups, group], np.int64),
        "candidates_shape": np.array([-1, kept * group], np.int64),
        "kept": np.array([kept], np.int64),
        "k": np.array([min(SHORTLIST, kept * group)], np.int64),
        "group": np.array(group, np.int64),
        "axis1": np.array([1], np.int64),
        "axis2": np.array([2], np.int64),
        "minus2": np.array(-2.0, np.float32),
    }

    def t(name: str) -> str:
        return prefix + name

    nodes = [
        helper.make_node("Sub", [features, t("mean")], [t("f")]),
        helper.make_node(
            "DynamicQuantizeMatMul",
            [t("f"), t("bank_q"), t("bank_scale"), t("bank_zero"), t("bank_sq_centred")],
            [t("approx")],
            domain="com.microsoft",
        ),
        # the groups holding the SHORTLIST smallest approximations are those with the smallest minima
        helper.make_node("Reshape", [t("approx"), t("groups_shape")], [t("by_group")]),  # patches × G × S
        _reduce_min(opset, t("by_group"), t("axis2"), 2, t("group_min")),
        helper.make_node(
            "TopK", [t("group_min"), t("kept")], [t("gv"), t("gidx")], axis=-1, largest=0, sorted=0
        ),
        helper.make_node("Unsqueeze", [t("gidx"), t("axis2")], [t("gidx3")]),
        helper.make_node("GatherND", [t("by_group"), t("gidx3")], [t("kept_groups")], batch_dims=1),
        helper.make_node("Reshape", [t("kept_groups"), t("candidates_shape")], [t("candidates")]),
        helper.make_node("TopK", [t("candidates"), t("k")], [t("v"), t("at")], axis=-1, largest=0, sorted=0),
        helper.make_node("Div", [t("at"), t("group")], [t("which")]),
        helper.make_node("Mod", [t("at"), t("group")], [t("offset")]),
        helper.make_node("GatherElements", [t("gidx"), t("which")], [t("chosen")], axis=1),
        helper.make_node("Mul", [t("chosen"), t("group")], [t("first")]),
        helper.make_node("Add", [t("first"), t("offset")], [t("idx")]),  # bank rows, patches × k
        helper.make_node("Gather", [bank_name, t("idx")], [t("rows")], axis=0),  # patches × k × D
        helper.make_node("Gather", [bank_sq_name, t("idx")], [t("rows_sq")], axis=0),  # patches × k
        helper.make_node("Unsqueeze", [features, t("axis1")], [t("f3")]),  # patches × 1 × D
        helper.make_node("Transpose", [t("rows")], [t("rows_t")], perm=[0, 2, 1]),
        helper.make_node("MatMul", [t("f3"), t("rows_t")], [t("dot3")]),  # patches × 1 × k
        helper.make_node("Squeeze", [t("dot3"), t("axis1")], [t("dot")]),
        helper.make_node("Mul", [t("dot"), t("minus2")], [t("dot2")]),
        helper.make_node("Add", [t("rows_sq"), t("dot2")], [t("exact")]),  # |b|² - 2 f·b, as the Gemm gave
    ]
    reduce_min.input[0] = t("exact")
    at = list(graph.node).index(gemm)
    del graph.node[at]
    for offset, node in enumerate(nodes):
        graph.node.insert(at + offset, node)
    graph.initializer.extend(numpy_helper.from_array(v, t(k)) for k, v in constants.items())


def _group_size(entries: int) -> int:
    """Entries per group: the power of two nearest √K, so both TopKs are short."""
    return 1 << max(0, round(math.log2(max(entries, 1)) / 2))


def _replace(initializer: onnx.TensorProto, values: np.ndarray) -> None:
    initializer.CopyFrom(numpy_helper.from_array(values, initializer.name))


def _reduce_min(opset: int, data: str, axes: str, axis: int, out: str) -> onnx.NodeProto:
    """ReduceMin over one axis (``axes``: the same as a constant), without keeping it; the axes
    became an input at opset 18."""
    if opset >= 18:
        return helper.make_node("ReduceMin", [data, axes], [out], keepdims=0)
    return helper.make_node("ReduceMin", [data], [out], axes=[axis], keepdims=0)


def _bank_searches(
    graph: onnx.GraphProto, initializers: dict[str, onnx.TensorProto], where: Path
) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """Each Gemm of patch features against a bank (transposed, alpha -2) with the ReduceMin that takes
    each patch's nearest distance from it."""
    searches: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []
    for node in graph.node:
        if node.op_type != "Gemm" or len(node.input) != 3 or node.input[1] not in initializers:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("transB") != 1 or attributes.get("alpha") != -2.0:
            continue
        searches.extend(
            (node, consumer)
            for consumer in graph.node
            if consumer.op_type == "ReduceMin" and consumer.input[0] == node.output[0]
        )
    if not searches:
        raise ModelContractError(f"{where}: no nearest-neighbour Gemm and ReduceMin against a memory bank")
    return searches
