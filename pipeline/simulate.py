"""A simulated production line: procedural images of a cast part with known defects.

Why it exists: inspectors need labelled images to be fitted and tested, and a real
line cannot be asked for a crack on demand. Every image is a pure function of
(settings.seed, index), so a surprising score can be reproduced byte for byte, and
every defect comes with the mask of exactly the pixels it changed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

DEFECT_KINDS = ("crack", "scratch", "pit", "missing_print", "smeared_print", "edge_chip")
AUTO = "auto"
_REFERENCE_SIZE = 320  # defect sizes are specified in pixels of a 320 px frame
LIGHTING_PERIOD = 240  # parts per lighting cycle: steady within a batch, visible over a run
_LOT_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q: printers avoid look-alikes of 1 and 0
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK_BGR = np.array([40, 34, 30], np.float32)
_LABEL_BGR = np.array([200, 212, 218], np.float32)
_METAL_TINT = np.array([1.03, 1.0, 0.96], np.float32)  # BGR gains on a grey level
_BELT_TINT = np.array([1.06, 1.0, 0.95], np.float32)
_DECISION, _PART, _DEFECT = 0, 1, 2  # separate streams: forcing a defect keeps the part


@dataclass(frozen=True, slots=True)
class SimulatedPart:
    """One rendered part: BGR image, 0/255 defect mask and the ground truth behind it."""

    image: np.ndarray
    mask: np.ndarray
    defect: str | None
    lot_code: str
    index: int
    seed: int

    def __post_init__(self) -> None:
        if self.mask.shape != self.image.shape[:2]:
            raise ValueError(f"mask shape {self.mask.shape} != image {self.image.shape[:2]}")
        if (self.defect is None) == bool(self.mask.any()):
            raise ValueError(f"defect {self.defect!r} disagrees with mask (empty iff good)")


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """How the line behaves; the seed picks one reproducible run of it."""

    size: int = 320
    defect_rate: float = 0.3
    seed: int = 0
    lighting_drift: float = 0.08
    jitter_px: int = 6
    defect_kinds: tuple[str, ...] = DEFECT_KINDS

    def __post_init__(self) -> None:
        checks = [
            (self.size >= 96, "size", ">= 96 px", self.size),
            (0.0 <= self.defect_rate <= 1.0, "defect_rate", "in [0, 1]", self.defect_rate),
            (self.seed >= 0, "seed", ">= 0", self.seed),
            (0 <= self.lighting_drift <= 0.5, "lighting_drift", "in [0, 0.5]", self.lighting_drift),
            (
                0 <= self.jitter_px <= self.size // 10,
                "jitter_px",
                f"in [0, {self.size // 10}]",
                self.jitter_px,
            ),
            (len(self.defect_kinds) > 0, "defect_kinds", "at least one kind", self.defect_kinds),
        ]
        for ok, name, expected, actual in checks:
            if not ok:
                raise ValueError(f"{name}: expected {expected}, got {actual!r}")
        unknown = [k for k in self.defect_kinds if k not in DEFECT_KINDS]
        if unknown:
            raise ValueError(f"defect_kinds: expected members of {DEFECT_KINDS}, got {unknown}")


@dataclass(frozen=True, slots=True)
class _Geometry:
    cx: float
    cy: float
    radius: float
    holes: tuple[tuple[float, float], ...]  # bolt hole centres
    label: tuple[int, int, int, int]  # x, y, w, h
    scale: float  # frame size relative to the 320 px reference
    hub_radius: float
    hole_radius: float
    font: tuple[float, int]  # scale and stroke of the lot code


@dataclass(frozen=True, slots=True)
class _Scene:
    geometry: _Geometry
    base: np.ndarray  # the part before printing, float32 BGR
    good: np.ndarray  # base with the lot code printed
    belt: np.ndarray  # grey level of the belt (with the part's shadow), seen where the part is not
    ink: np.ndarray  # ink coverage 0..1
    surface: np.ndarray  # bool: plain metal, where surface defects may sit


def choose_defect(settings: SimulationSettings, index: int) -> str | None:
    """The line's own decision for part ``index``: good (None) or one defect kind."""
    rng = np.random.default_rng((settings.seed, index, _DECISION))
    if rng.random() >= settings.defect_rate:
        return None
    return settings.defect_kinds[int(rng.integers(len(settings.defect_kinds)))]


def render_part(settings: SimulationSettings, index: int, defect: str | None = AUTO) -> SimulatedPart:
    """Render part ``index``; ``defect`` is "auto" (the line decides), a kind, or None (good)."""
    if index < 0:
        raise ValueError(f"index: expected >= 0, got {index}")
    kind = choose_defect(settings, index) if defect == AUTO else defect
    if kind is not None and kind not in DEFECT_KINDS:
        raise ValueError(f"defect: expected 'auto', None or one of {DEFECT_KINDS}, got {kind!r}")
    rng = np.random.default_rng((settings.seed, index, _PART))
    geometry = _sample_geometry(rng, settings)
    letter = _LOT_LETTERS[rng.integers(len(_LOT_LETTERS))]
    lot_code = f"{letter}{rng.integers(10)}-{rng.integers(10000):04d}"
    scene = _render_scene(rng, geometry, lot_code, settings.size)
    mask, composite = np.zeros(scene.ink.shape, np.uint8), scene.good
    if kind is not None:
        painter = _DEFECT_PAINTERS[kind]
        defective, hit = painter(scene, np.random.default_rng((settings.seed, index, _DEFECT)))
        composite = scene.good.copy()
        composite[hit] = defective[hit]
        mask[hit] = 255
    image = _expose(composite, settings, index, rng)
    return SimulatedPart(image, mask, kind, lot_code, index, settings.seed)


class SimulatedLine:
    """A camera at the end of a simulated line: part ``i`` always looks the same."""

    def __init__(self, settings: SimulationSettings) -> None:
        self.settings = settings

    def part(self, index: int) -> SimulatedPart:
        return render_part(self.settings, index)

    def parts(self, start: int, count: int) -> Iterator[SimulatedPart]:
        """Parts ``start`` .. ``start + count - 1``, rendered lazily as they are consumed."""
        if start < 0 or count < 0:
            raise ValueError(f"start and count: expected >= 0, got {start}, {count}")
        return (self.part(index) for index in range(start, start + count))


def _sample_geometry(rng: np.random.Generator, settings: SimulationSettings) -> _Geometry:
    size, scale, jitter = settings.size, settings.size / _REFERENCE_SIZE, settings.jitter_px
    cx, cy = (size / 2 + rng.integers(-jitter, jitter + 1, size=2)).tolist()
    radius = 0.38 * size
    turn = math.radians(45 + rng.uniform(-8, 8))  # bolts on the diagonals clear the label
    holes = tuple(
        (
            cx + 0.52 * radius * math.cos(turn + k * math.pi / 2),
            cy + 0.52 * radius * math.sin(turn + k * math.pi / 2),
        )
        for k in range(4)
    )
    font = (0.62 * scale, max(1, round(2 * scale)))
    (text_w, text_h), _ = cv2.getTextSize("W8-8888", _FONT, *font)  # widest code: fixed label
    w, h = round(text_w + 14 * scale), round(text_h + 14 * scale)
    label = (round(cx - w / 2), round(cy + 0.72 * radius - h / 2), w, h)
    return _Geometry(cx, cy, radius, holes, label, scale, 0.24 * radius, 0.075 * radius, font)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> np.ndarray:
    """Pixel row and column coordinates, reused by every frame of a size."""
    return np.mgrid[0:size, 0:size].astype(np.float32)


def _circle(canvas: np.ndarray, center: tuple[float, float], radius: float, value: int) -> None:
    """Sub-pixel, anti-aliased filled circle, so jittered parts keep smooth edges."""
    c = (round(center[0] * 16), round(center[1] * 16))
    cv2.circle(canvas, c, max(1, round(radius * 16)), value, -1, cv2.LINE_AA, shift=4)


def _render_scene(rng: np.random.Generator, g: _Geometry, lot_code: str, size: int) -> _Scene:
    """Belt, shadow, machined disc, hub, bolt holes, label, and the printed lot code."""
    yy, xx = _grid(size)
    s, dx, dy = g.scale, xx - g.cx, yy - g.cy
    belt = 52 + 14 * yy[:, :1] / size + 3 * np.sin(yy[:, :1] * (1.3 / s) + rng.uniform(0, 6.3))
    shadow = np.clip((g.radius + 5 * s - cv2.magnitude(dx - 4 * s, dy - 6 * s)) / (10 * s), 0, 1)
    belt = belt * (1 - 0.45 * shadow)
    r = cv2.magnitude(dx, dy)
    metal = _machined_metal(rng, g, dx + dy, r)
    disc = np.clip(g.radius - r + 0.5, 0, 1)
    tints = zip(_BELT_TINT, _METAL_TINT, strict=True)
    base = cv2.merge([belt * bt + (metal * mt - belt * bt) * disc for bt, mt in tints])
    x, y, w, h = g.label
    base[y : y + h, x : x + w] = _LABEL_BGR + rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)
    ink = np.zeros((size, size), np.uint8)
    (text_w, text_h), _ = cv2.getTextSize(lot_code, _FONT, *g.font)
    origin = (round(x + (w - text_w) / 2), round(y + (h + text_h) / 2))
    cv2.putText(ink, lot_code, origin, _FONT, g.font[0], 255, g.font[1], cv2.LINE_AA)
    ink_alpha = ink.astype(np.float32) / 255
    return _Scene(g, base, _blend_ink(base, ink_alpha), belt, ink_alpha, _surface(g, size))


def _machined_metal(
    rng: np.random.Generator, g: _Geometry, diagonal: np.ndarray, r: np.ndarray
) -> np.ndarray:
    """Grey level of the disc: turning rings, rim bevel, raised hub, chamfered bores."""
    s, size = g.scale, r.shape[0]
    metal = 150 - 9 * diagonal / g.radius  # lit from the upper left
    metal += 4 * np.sin(r * (1.7 / s) + rng.uniform(0, 6.3)) + 2 * np.sin(r * (0.31 / s))
    metal -= 28 * np.clip(1 - (g.radius - r) / (4 * s), 0, 1)  # rim bevel
    metal += 16 * (r < g.hub_radius) - 30 * (np.abs(r - g.hub_radius) < 1.5 * s)
    rings, holes = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
    bores = [(c, g.hole_radius) for c in g.holes] + [((g.cx, g.cy), 0.4 * g.hub_radius)]
    for center, hole_radius in bores:
        _circle(rings, center, hole_radius + 1.5 * s, 255)  # chamfer catches the light
        _circle(holes, center, hole_radius, 255)
    hole_alpha = holes.astype(np.float32) / 255
    metal += 25 * (rings.astype(np.float32) / 255 - hole_alpha)
    return metal + (28 - metal) * hole_alpha


def _surface(g: _Geometry, size: int) -> np.ndarray:
    """Plain metal: inside the rim bevel, outside hub, holes and label (with margins)."""
    canvas, m, c = np.zeros((size, size), np.uint8), 3 * g.scale, (round(g.cx), round(g.cy))
    cv2.circle(canvas, c, round(g.radius - 5 * g.scale), 255, -1)
    cv2.circle(canvas, c, round(g.hub_radius + m), 0, -1)
    for hx, hy in g.holes:
        cv2.circle(canvas, (round(hx), round(hy)), round(g.hole_radius + m + 1.5), 0, -1)
    x, y, w, h = g.label
    cv2.rectangle(canvas, (x - round(m), y - round(m)), (x + w + round(m), y + h + round(m)), 0, -1)
    return canvas > 0


def _blend_ink(base: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Ink over the base, computed only in the box the ink covers (most frames are bare)."""
    out = base.copy()
    x, y, w, h = cv2.boundingRect((ink > 0).astype(np.uint8))
    alpha, window = ink[y : y + h, x : x + w, None], out[y : y + h, x : x + w]
    window += (_INK_BGR - window) * alpha
    return out


def indices_over_lighting_cycle(count: int, start: int) -> list[int]:
    """``count`` distinct part indices from ``start`` that together span at least one whole lighting
    cycle: good parts collected over a shift for fitting, not all under one moment of its light."""
    stride = LIGHTING_PERIOD // max(count, 1) + 1
    return [start + k * stride for k in range(count)]


def _expose(
    scene: np.ndarray, settings: SimulationSettings, index: int, rng: np.random.Generator
) -> np.ndarray:
    """Lighting wanders slowly over the run (plus a little flicker); the sensor adds noise."""
    phase = np.random.default_rng(settings.seed).uniform(0, 2 * math.pi)
    drift = math.sin(2 * math.pi * index / LIGHTING_PERIOD + phase) + 0.15 * rng.standard_normal()
    noise = rng.standard_normal(scene.shape[:2], dtype=np.float32)
    gain = 1 + settings.lighting_drift * drift
    return cv2.addWeighted(scene, gain, cv2.merge([noise] * 3), 2.2, 0.0, dtype=cv2.CV_8U)


def _place(
    rng: np.random.Generator,
    scene: _Scene,
    make: Callable[[np.ndarray], np.ndarray],
    margin: float = 0.0,
    tries: int = 40,
) -> np.ndarray:
    """Of a few shapes ``make`` builds from random points (paths with vertices a few px
    apart, or blob centres), the one most on plain metal: not in holes, hub or label."""
    surface, best, best_score = scene.surface, np.zeros((1, 2)), -1.0
    starts = np.argwhere(surface)[:, ::-1].astype(float)  # (x, y) of plain metal pixels
    if margin > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(margin) + 1,) * 2)
        surface = cv2.erode(surface.astype(np.uint8), kernel) > 0
    for _ in range(tries):
        shape = make(starts[rng.integers(len(starts))])
        xs, ys = np.round(shape).astype(int).T
        inside = (xs >= 0) & (ys >= 0) & (xs < surface.shape[1]) & (ys < surface.shape[0])
        score = surface[ys[inside], xs[inside]].sum() / len(xs)
        if score > best_score:
            best, best_score = shape, score
        if score >= 1.0:
            break
    return best


def _draw_path(size: int, path: np.ndarray, thickness: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    pts = np.round(path * 16).astype(np.int32)
    cv2.polylines(canvas, [pts], False, 255, thickness, cv2.LINE_8, shift=4)
    return canvas > 0


def _jagged(rng: np.random.Generator, start: np.ndarray, length: float, s: float) -> np.ndarray:
    """A fracture line: a slowly turning heading with sharp kinks at every segment."""
    heading, points = rng.uniform(0, 2 * math.pi), [start]
    for _ in range(max(2, round(length / (6 * s)))):
        heading += rng.normal(0, 0.12)
        kink = heading + rng.normal(0, 0.4)
        points.append(points[-1] + 6 * s * np.array([math.cos(kink), math.sin(kink)]))
    return np.array(points)


def _crack(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dark forked fracture; clipped to plain metal so the mask never claims a hole."""
    s, size = scene.geometry.scale, scene.good.shape[0]
    length = rng.uniform(40, 90) * s
    path = _place(rng, scene, lambda p: _jagged(rng, p, length, s))
    hit = _draw_path(size, path, max(2, round(rng.uniform(2, 3.4) * s)))
    branch = _jagged(rng, path[len(path) // 2], length * rng.uniform(0.15, 0.3), s)
    hit |= _draw_path(size, branch, max(1, round(1.5 * s)))  # cracks fork
    return scene.good * 0.22, hit & scene.surface


def _scratch(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bright, gently bowed line: freshly exposed metal catches the light."""
    s, size = scene.geometry.scale, scene.good.shape[0]
    length = rng.uniform(50, 110) * s

    def bow(start: np.ndarray) -> np.ndarray:
        angle = rng.uniform(0, 2 * math.pi)
        direction = np.array([math.cos(angle), math.sin(angle)])
        bend = np.array([-direction[1], direction[0]]) * rng.uniform(-0.12, 0.12) * length
        t = np.linspace(0, 1, 32)[:, None]
        return start + direction * length * t + bend * 4 * t * (1 - t)

    hit = _draw_path(size, _place(rng, scene, bow), max(1, round(2 * s)))
    return scene.good + (245 - scene.good) * 0.75, hit & scene.surface


def _pit(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cluster of 1-3 round cavities (casting porosity), darkest at the bottom."""
    s, size = scene.geometry.scale, scene.good.shape[0]
    radii = rng.uniform(4, 8, int(rng.integers(1, 4))) * s
    offsets = rng.uniform(-10, 10, (len(radii), 2)) * s
    centers = _place(rng, scene, lambda p: p + offsets, margin=radii.max())
    outer, core = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
    for center, radius in zip(centers, radii, strict=True):
        _circle(outer, tuple(center), radius, 255)
        _circle(core, tuple(center), radius * 0.5, 255)
    pitted = scene.good * np.float32(0.5)
    pitted[core > 127] *= 0.36  # the deep core: 0.18 of the metal
    return pitted, (outer > 127) & scene.surface


def _missing_print(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blank label; the mask is the box the text should fill, since that is what is wrong."""
    x, y, w, h = cv2.boundingRect((scene.ink > 0).astype(np.uint8))
    pad, hit = round(2 * scene.geometry.scale), np.zeros(scene.ink.shape, bool)
    hit[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad] = True
    return scene.base, hit


def _smeared_print(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Wet ink dragged sideways: a one-sided motion blur that streaks past the text."""
    s, reach = scene.geometry.scale, int(rng.uniform(18, 32) * scene.geometry.scale)
    angle = rng.uniform(-0.45, 0.45) + (math.pi if rng.random() < 0.5 else 0.0)
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1), np.float32)
    tip = (round(reach + reach * math.cos(angle)), round(reach + reach * math.sin(angle)))
    cv2.line(kernel, (reach, reach), tip, 1.0, max(1, round(2 * s)))
    x, y, w, h = cv2.boundingRect((scene.ink > 0).astype(np.uint8))
    pad = reach + 3  # only the text's surroundings can change, so filter just there
    window = np.s_[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
    smear = cv2.filter2D(scene.ink[window], -1, kernel / kernel.sum(), borderType=cv2.BORDER_CONSTANT)
    smudged = scene.ink.copy()
    smudged[window] = np.clip(0.35 * scene.ink[window] + 2.2 * smear, 0, 0.9)
    changed = (np.abs(smudged - scene.ink) > 0.04).astype(np.uint8)
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    return _blend_ink(scene.base, smudged), changed


def _edge_chip(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bite out of the rim: the belt shows through, edged by a darker fracture face."""
    g, size = scene.geometry, scene.good.shape[0]
    angle = rng.uniform(0, 2 * math.pi)
    while abs(math.remainder(angle - math.pi / 2, 2 * math.pi)) < 0.7:  # keep off the label
        angle = rng.uniform(0, 2 * math.pi)
    half = rng.uniform(12, 25) * g.scale / 2 / g.radius  # half the bite, as an angle
    depth = rng.uniform(0.5, 0.85) * 2 * half * g.radius
    t, rough = np.linspace(-1, 1, 9), 1 + rng.uniform(-0.2, 0.2, 9)

    def bite(inset: float) -> np.ndarray:
        r = g.radius - np.maximum(depth * (1 - np.abs(t) ** 1.5) * rough - inset, 0.0)
        r = np.concatenate([r, [g.radius + 6 * g.scale] * 2])  # close the polygon off the part
        a = angle + half * np.concatenate([t, [1.2, -1.2]])
        pts = np.stack([g.cx + r * np.cos(a), g.cy + r * np.sin(a)], 1)
        canvas = np.zeros((size, size), np.uint8)
        cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
        return canvas > 0

    removed, hole = bite(0.0), bite(2.5 * g.scale)
    yy, xx = _grid(size)
    on_part = cv2.magnitude(xx - g.cx, yy - g.cy) < g.radius + 0.5
    chipped = scene.good * np.float32(0.55)  # fracture face
    chipped[hole] = scene.belt[hole][:, None] * _BELT_TINT
    return chipped, removed & on_part


_Painter = Callable[[_Scene, np.random.Generator], tuple[np.ndarray, np.ndarray]]
_DEFECT_PAINTERS: dict[str, _Painter] = {
    "crack": _crack,
    "scratch": _scratch,
    "pit": _pit,
    "missing_print": _missing_print,
    "smeared_print": _smeared_print,
    "edge_chip": _edge_chip,
}
