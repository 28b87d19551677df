"""Rendering of world scenes with PIL, plus optional natural shifts for robustness sets.

Scenes are drawn on a canvas ``SUPERSAMPLE`` (4) times larger and box-filtered down, so edges are anti-aliased with
exact 1/16 coverage steps; a pixel belongs to an object when more than half of it is covered, which is what the
parser recovers. Geometry is in fractions of the side, so any resolution works (64 default, 384 tested).

Shifts (``Shift``) are applied in a fixed order: position jitter (scene level, only moves that keep the layout
valid and every pairwise relation unchanged) -> background tint -> drawing -> occluder stripes -> downsampling ->
blur -> brightness -> gaussian noise. Every random choice comes from ``numpy.random.default_rng(seed)``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .scene import COLORS, DEFAULT_RESOLUTION, GRID, Obj, Scene, fits, relation

SUPERSAMPLE = 4
STRIPE_COLOR = (250, 250, 250)


def _size2(size) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    """Draw one shape inscribed in ``box`` (canvas pixels, x2/y2 exclusive)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    if shape == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif shape == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif shape == "triangle":
        draw.polygon([((x1 + x2) / 2 - 0.5, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _canvas_box(o: Obj, w: int, h: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = o.box(w * SUPERSAMPLE, h * SUPERSAMPLE)
    return x1, y1, x2, y2


@dataclass(frozen=True)
class Shift:
    """Natural distribution shifts; all zero / 1.0 means a clean render. Pixel amounts are for a 64 px image and
    scale with resolution."""
    tint: float = 0.0        # max per-channel offset of the background colour (0-255 units)
    noise: float = 0.0       # std of additive gaussian noise (0-255 units)
    blur: float = 0.0        # gaussian blur radius in pixels at 64 px
    brightness: float = 1.0  # multiplicative brightness
    jitter: float = 0.0      # max centre displacement, fraction of the side
    stripes: int = 0         # number of thin occluder stripes

    @property
    def clean(self) -> bool:
        return self == Shift()


SHIFTS: dict[str, Shift] = {
    "clean": Shift(),
    "tint": Shift(tint=25.0),
    "noise": Shift(noise=12.0),
    "blur": Shift(blur=1.0),
    "dark": Shift(brightness=0.8),
    "bright": Shift(brightness=1.15),
    "jitter": Shift(jitter=0.04),
    "stripes": Shift(stripes=2),
    "mixed": Shift(tint=15.0, noise=8.0, blur=0.6, brightness=0.9, jitter=0.02, stripes=1),
}


def jitter_scene(scene: Scene, amount: float, rng: np.random.Generator) -> Scene:
    """Move each object by up to ``amount`` (fraction of the side), keeping only moves that leave the layout
    valid and all pairwise relations as they were, so ground truth answers do not change."""
    objs = list(scene.objects)
    rels = {(i, j): relation(a, b) for i, a in enumerate(objs) for j, b in enumerate(objs) if i != j}
    for i, o in enumerate(objs):
        dx, dy = rng.uniform(-amount, amount, size=2)
        cand = replace(o, x=round((o.x + dx) * GRID) / GRID, y=round((o.y + dy) * GRID) / GRID)
        trial = objs[:i] + [cand] + objs[i + 1:]
        same = all(relation(trial[a], trial[b]) == r for (a, b), r in rels.items())
        if fits(trial) and same:
            objs = trial
    return replace(scene, objects=tuple(objs))


def shifted_scene(scene: Scene, shift: Shift | None, seed: int = 0) -> Scene:
    """The scene that ``render(scene, size, shift, seed)`` actually draws (after position jitter): use it as the
    ground truth of a jittered robustness set."""
    if shift is None or shift.jitter <= 0:
        return scene
    return jitter_scene(scene, shift.jitter, np.random.default_rng(seed))


def render(scene: Scene, size=DEFAULT_RESOLUTION, shift: Shift | None = None, seed: int = 0) -> Image.Image:
    """Render ``scene`` to an RGB PIL image of ``size`` (int or (w, h)); ``shift`` adds natural shifts."""
    w, h = _size2(size)
    shift = shift or Shift()
    rng = np.random.default_rng(seed)
    if shift.jitter > 0:
        scene = jitter_scene(scene, shift.jitter, rng)
    bg = np.array(scene.background, dtype=float)
    if shift.tint > 0:
        bg = np.clip(bg + rng.uniform(-shift.tint, shift.tint, size=3), 0, 255)
    W, H = w * SUPERSAMPLE, h * SUPERSAMPLE
    img = Image.new("RGB", (W, H), tuple(int(round(v)) for v in bg))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        draw_shape(draw, o.shape, _canvas_box(o, w, h), COLORS[o.color])
    for _ in range(shift.stripes):
        width = max(1, int(round(1.5 * SUPERSAMPLE * w / 64)))
        if rng.random() < 0.5:
            y = rng.uniform(0.15, 0.85) * H
            tilt = rng.uniform(-0.15, 0.15) * H
            draw.line([(0, y - tilt), (W, y + tilt)], fill=STRIPE_COLOR, width=width)
        else:
            x = rng.uniform(0.15, 0.85) * W
            tilt = rng.uniform(-0.15, 0.15) * W
            draw.line([(x - tilt, 0), (x + tilt, H)], fill=STRIPE_COLOR, width=width)
    img = img.reduce(SUPERSAMPLE)
    if shift.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(shift.blur * w / 64))
    if shift.brightness != 1.0 or shift.noise > 0:
        arr = np.asarray(img, dtype=np.float64) * shift.brightness
        if shift.noise > 0:
            arr = arr + rng.normal(0.0, shift.noise, size=arr.shape)
        img = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")
    return img


def object_masks(scene: Scene, size=DEFAULT_RESOLUTION) -> list[np.ndarray]:
    """Boolean HxW mask of each object (pixels more than half covered), in scene order."""
    w, h = _size2(size)
    out = []
    for o in scene.objects:
        canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
        draw_shape(ImageDraw.Draw(canvas), o.shape, _canvas_box(o, w, h), 255)
        # strictly more than half covered (coverage comes in 1/16 steps, so >= 9/16), as the parser decides
        out.append(np.asarray(canvas.reduce(SUPERSAMPLE)) > 135)
    return out


def mask_box(mask: np.ndarray) -> list[int]:
    """[x1, y1, x2, y2] of a boolean mask with exclusive x2/y2 (pixel-edge coordinates, like detector boxes)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
