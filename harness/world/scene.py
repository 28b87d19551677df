"""Scene model of the embedded benchmark world: flat coloured shapes on a plain background.

Defaults are FIXED for this world version (a tiny model is pretrained on them; changing any of them changes every
generated dataset and must bump ``WORLD_VERSION``). Why each value:

* Resolution 64x64 by default (any size renders; geometry is in fractions of the side). A Janus-style tiny model
  sees a 64x64 image as an 8x8 grid of 8-pixel patches / VQ codes, so 64 is the largest size that keeps the
  sequence at 64 image tokens.
* Sizes: ``small`` = 64/256 of the side (16 px = 2 patches at 64), ``large`` = 104/256 (26 px, a little over 3
  patches). Both stay large relative to a patch so a few-million-parameter model can resolve shape, and the 1.6x
  ratio keeps "small" vs "large" visible after VQ reconstruction.
* Shapes: circle, square, triangle (apex up), always axis-aligned and inscribed in a square box. Their fill ratios
  (0.79, 1.0, 0.5) and corner counts (0, 4, 3) differ a lot, which keeps the detector exact and the counting
  questions meaningful; more shapes would mostly cost a tiny model accuracy.
* Six colours named with GenEval's colour words, chosen for separation: the closest pair (green/black) is 134
  apart in RGB (then red/purple 144, blue/purple 148) and every colour is ~195 or more from the background. Adding
  orange (66 from yellow), white (52 from the background), brown (100 from red) or pink (103 from the background)
  would shrink that margin, and with it the robustness of colour naming on blurry generated images.
* Background: flat light grey (225, 225, 225): far from every palette colour, and not a colour word itself.
* Layout: 1-4 objects, centres quantised to 1/256 of the side (exact on the 4x supersampled canvas at 64, 128,
  256 and 384 px); at least 8/256 from the border and 16/256 (4 px at 64) between object boxes, so objects never
  touch and still separate after moderate blur.
* Relations ("left of", "right of", "above", "below") use centres: the offset along one axis must be >= 0.2 of the
  side and at least twice the offset along the other. Pairs in between have no relation and are never asked
  about. The rule agrees with GenEval's ``relative_position`` for every pair it labels.
* Randomness: only explicit ``numpy.random.Generator`` objects. ``rng_for(split, ...)`` derives them from a
  ``SeedSequence`` whose first word is the split, so "train" and "eval" streams are independent and disjoint.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}
CORNERS = {"circle": 0, "square": 4, "triangle": 3}
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (240, 200, 30),
    "green": (40, 160, 60),
    "blue": (30, 100, 220),
    "purple": (160, 50, 170),
    "black": (30, 30, 30),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
BACKGROUND = (225, 225, 225)
GRID = 256
SIZES = {"small": 64 / GRID, "large": 104 / GRID}
SIZE_NAMES = ("small", "large")
BORDER = 8 / GRID
GAP = 16 / GRID
MAX_OBJECTS = 4
DEFAULT_RESOLUTION = 64
REL_MIN = 0.2
RELATIONS = ("left of", "right of", "above", "below")
REL_ANSWER = {"left of": "left", "right of": "right", "above": "above", "below": "below"}
# 3x3 coarse positions, row-major, as used in detailed captions and layout questions
CELLS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
SPLITS = {"train": 0x7A1, "eval": 0xE7A}


def rng_for(split: str, *keys: int | str) -> np.random.Generator:
    """Independent generator for (split, keys...); strings are hashed with crc32 so names can be keys."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    words = [SPLITS[split]]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k))
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    size: str
    x: float  # centre, fraction of the width
    y: float  # centre, fraction of the height (0 = top)

    @property
    def extent(self) -> float:
        return SIZES[self.size]

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    def box(self, width: float = 1.0, height: float | None = None) -> tuple[float, float, float, float]:
        """Geometric box [x1, y1, x2, y2] in units of ``width``/``height`` (pixels when given the image size)."""
        height = width if height is None else height
        h = self.extent / 2
        return ((self.x - h) * width, (self.y - h) * height, (self.x + h) * width, (self.y + h) * height)

    @property
    def cell(self) -> str:
        col = min(2, int(self.x * 3))
        row = min(2, int(self.y * 3))
        return CELLS[row * 3 + col]

    def to_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size": self.size, "x": self.x, "y": self.y}


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: tuple[int, int, int] = field(default=BACKGROUND)

    def to_dict(self) -> dict:
        return {"objects": [o.to_dict() for o in self.objects], "background": list(self.background)}

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(tuple(Obj(**o) for o in d["objects"]), tuple(d.get("background", BACKGROUND)))

    def select(self, shape: str | None = None, color: str | None = None, size: str | None = None) -> list[Obj]:
        return [o for o in self.objects if (shape is None or o.shape == shape)
                and (color is None or o.color == color) and (size is None or o.size == size)]

    def count(self, shape: str | None = None, color: str | None = None, size: str | None = None) -> int:
        return len(self.select(shape, color, size))

    def classes(self) -> list[tuple[str, str]]:
        """Distinct (color, shape) pairs in reading order."""
        out: list[tuple[str, str]] = []
        for o in sorted(self.objects, key=lambda o: (o.x, o.y)):
            if (o.color, o.shape) not in out:
                out.append((o.color, o.shape))
        return out


def relation(a: Obj, b: Obj) -> str | None:
    """Clear relation of ``a`` to ``b`` ("left of", "right of", "above", "below"), or None when ambiguous."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= REL_MIN and abs(dx) >= 2 * abs(dy):
        return "left of" if dx < 0 else "right of"
    if abs(dy) >= REL_MIN and abs(dy) >= 2 * abs(dx):
        return "above" if dy < 0 else "below"
    return None


def fits(objs: Sequence[Obj]) -> bool:
    """True when every object lies inside the border and boxes are at least GAP apart."""
    for i, a in enumerate(objs):
        x1, y1, x2, y2 = a.box()
        if x1 < BORDER - 1e-9 or y1 < BORDER - 1e-9 or x2 > 1 - BORDER + 1e-9 or y2 > 1 - BORDER + 1e-9:
            return False
        for b in objs[:i]:
            u1, v1, u2, v2 = b.box()
            if x1 < u2 + GAP - 1e-9 and u1 < x2 + GAP - 1e-9 and y1 < v2 + GAP - 1e-9 and v1 < y2 + GAP - 1e-9:
                return False
    return True


def _free_position(rng: np.random.Generator, placed: list[Obj], proto: Obj, tries: int) -> Obj | None:
    lo = int(np.ceil((BORDER + proto.extent / 2) * GRID))
    hi = int(np.floor((1 - BORDER - proto.extent / 2) * GRID))
    for _ in range(tries):
        cand = replace(proto, x=int(rng.integers(lo, hi + 1)) / GRID, y=int(rng.integers(lo, hi + 1)) / GRID)
        if fits(placed + [cand]):
            return cand
    return None


def place(rng: np.random.Generator, specs: Sequence[tuple[str, str, str]], tries: int = 200) -> tuple[Obj, ...] | None:
    """Random non-overlapping positions for (shape, color, size) specs, or None if they do not fit."""
    placed: list[Obj] = []
    for shape, color, size in specs:
        o = _free_position(rng, placed, Obj(shape, color, size, 0.5, 0.5), tries)
        if o is None:
            return None
        placed.append(o)
    return tuple(placed)


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def sample_scene(rng: np.random.Generator, n: int | None = None, *, objects: Iterable[dict] = (),
                 shapes: Sequence[str] = SHAPES, colors: Sequence[str] = COLOR_NAMES,
                 distinct: bool = False, forbid: Iterable[tuple[str, str]] = (),
                 min_n: int = 1, max_n: int = MAX_OBJECTS) -> Scene:
    """Random scene. ``objects``: partial specs ({"shape", "color", "size"} keys optional) that must appear;
    the rest of the ``n`` objects (n drawn from [min_n, max_n] when None) are free. ``distinct`` makes every
    (color, shape) pair unique; ``forbid`` lists (color, shape) pairs that free objects may not take.
    Sizes are redrawn when a layout does not fit; after 20 failed layouts everything is made small, which
    always fits four objects."""
    fixed = [dict(o) for o in objects]
    if n is None:
        n = int(rng.integers(max(min_n, len(fixed)), max(max_n, len(fixed)) + 1))
    if n < len(fixed):
        raise ValueError("n is smaller than the number of required objects")
    banned = set(forbid)
    for attempt in range(40):
        specs: list[tuple[str, str, str]] = []
        used: set[tuple[str, str]] = set()
        for i in range(n):
            want = fixed[i] if i < len(fixed) else {}
            for _ in range(100):
                shape = want.get("shape") or _pick(rng, shapes)
                color = want.get("color") or _pick(rng, colors)
                free = i >= len(fixed)
                if free and ((color, shape) in banned or (distinct and (color, shape) in used)):
                    continue
                break
            else:
                raise ValueError("constraints leave no (color, shape) pair to draw")
            size = want.get("size") or (_pick(rng, SIZE_NAMES) if attempt < 20 else "small")
            used.add((color, shape))
            specs.append((shape, color, size))
        objs = place(rng, specs)
        if objs is not None:
            return Scene(objs)
    raise RuntimeError("could not place the requested objects")


def sample_until(rng: np.random.Generator, accept, tries: int = 500, **kw) -> Scene:
    """Draw scenes with ``sample_scene(rng, **kw)`` until ``accept(scene)`` is true (deterministic)."""
    for _ in range(tries):
        scene = sample_scene(rng, **kw)
        if accept(scene):
            return scene
    raise RuntimeError("no scene satisfied the constraint")
