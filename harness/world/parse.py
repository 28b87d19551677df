"""Scene parser: the world's object detector (pixels -> shapes, colours, boxes, masks, confidences).

Output follows GenEval's detector path: ``ParseResult.detections`` maps every shape name to a list of detections
sorted by score (descending, stable), each ``{"box": [x1, y1, x2, y2], "score": float, "mask": bool HxW,
"color": str, "size": str}``. Boxes are floats in pixel-edge coordinates (a pixel i spans [i, i+1)): the box of
the ideal shape fitted to the blob, sub-pixel accurate on clean renders. Blobs that are too small, elongated,
irregular or off-palette go to ``ParseResult.unrecognised`` as ``{"box", "area", "reason"}`` (box = integer mask
extent): they are reported, never guessed.

Method (numpy + scipy.ndimage only):
1. Background = median of a 2-pixel border frame; noise level = robust spread of that frame.
2. Foreground = pixels far from the background (a low threshold, so blurred edges stay attached), split into
   8-connected components; specks below ``MIN_BLOB`` of the image are dropped silently.
3. Colour = median of a component's core pixels (the most saturated ones), brightness-corrected by the background
   and matched to the nearest palette colour; components whose core holds two palette colours are split by colour,
   which separates touching objects of different colours.
4. Mask = pixels whose projection on the background->colour line is past half way, which reproduces the
   renderer's "more than half covered" rule.
5. Shape: for each of circle, square and triangle, the box implied by the blob's soft-coverage moments (centroid
   and variances, which are sub-pixel and indifferent to a triangle's thin apex) and the soft IoU of the blob with
   that shape drawn in that box. When no sharp shape fits (IoU < 0.95) the image is probably blurred, and blurred
   templates (sigma 0.5-3 px, variances corrected by sigma^2) are tried too. Best IoU < 0.7: "irregular shape".
   Score = shape confidence (IoU level and margin over the runner-up) x colour confidence (distance to the palette
   entry relative to palette spacing). Clean renders score 1.0; blur, noise and off-colours lower it smoothly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .render import SUPERSAMPLE, draw_shape, mask_box
from .scene import BACKGROUND, COLORS, SHAPES, SIZES, Obj, Scene

PALETTE_NAMES = list(COLORS)
PALETTE = np.array([COLORS[c] for c in PALETTE_NAMES], dtype=np.float64)
_PAIR = PALETTE[:, None, :] - PALETTE[None, :, :]
MIN_PALETTE_GAP = float(np.sqrt((_PAIR ** 2).sum(-1))[~np.eye(len(PALETTE), dtype=bool)].min())
MIN_FG_DIST = float(np.sqrt(((PALETTE - np.array(BACKGROUND)) ** 2).sum(-1)).min())
MIN_BLOB = 0.0015                          # fraction of the image: smaller blobs are noise
MIN_OBJECT = 0.35 * 0.5 * SIZES["small"] ** 2  # 35% of the smallest object (a small triangle)
ASPECT = (0.6, 1 / 0.6)
IOU_MIN = 0.7                              # below: not one of the world's shapes
COLOR_TOL = 0.4 * MIN_PALETTE_GAP          # farther from every palette colour: unknown (ambiguous)
SIZE_SPLIT = (SIZES["small"] + SIZES["large"]) / 2
SHARP_IOU = 0.95                           # clean renders fit a sharp template at >= 0.99
BLUR_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0)
RIM = 3                                    # pixels around a blob whose soft coverage enters the fit
PAD = 6
HALF = 0.53                                # "more than half covered": exactly-half rim pixels stay out


@dataclass
class ParseResult:
    """What ``parse`` found: per-class detections (GenEval's detector layout), unrecognised blobs, and the
    estimated background colour and noise level of the image."""
    detections: dict[str, list[dict]]
    unrecognised: list[dict]
    background: tuple[float, float, float]
    size: tuple[int, int]  # (width, height)
    noise: float = 0.0

    def objects(self, threshold: float | None = None) -> list[dict]:
        """Detections (all, or those scoring above ``threshold``) as one list with a "class" key, left to right."""
        out = [dict(d, **{"class": c}) for c, ds in self.detections.items() for d in ds
               if threshold is None or d["score"] > threshold]
        return sorted(out, key=lambda d: (d["box"][0] + d["box"][2], d["box"][1] + d["box"][3]))

    def to_scene(self, threshold: float = 0.3) -> Scene:
        """Detections scoring above ``threshold`` (GenEval's default) as a Scene; centres from the boxes."""
        w, h = self.size
        objs = []
        for d in self.objects(threshold):
            x1, y1, x2, y2 = d["box"]
            objs.append(Obj(d["class"], d["color"], d["size"], (x1 + x2) / 2 / w, (y1 + y2) / 2 / h))
        return Scene(tuple(objs))


_VAR_K = {"circle": (16.0, 16.0), "square": (12.0, 12.0), "triangle": (24.0, 18.0)}


def _soft_template(shape: str, box, w: int, h: int) -> np.ndarray:
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    draw_shape(ImageDraw.Draw(canvas), shape, tuple(v * SUPERSAMPLE for v in box), 255)
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float64) / 255.0


def _fit_shapes(alpha: np.ndarray, sigma: float = 0.0) -> dict[str, tuple[float, tuple]]:
    """For each shape, the box implied by the blob's first and second moments and the soft IoU of the blob
    with that shape drawn in that box (blurred by ``sigma`` px). Moments make the fit sub-pixel and insensitive
    to thin apices; a gaussian blur adds sigma^2 to both variances, which is removed before fitting."""
    h, w = alpha.shape
    m = max(alpha.sum(), 1e-9)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    cx, cy = (alpha * xs).sum() / m, (alpha * ys).sum() / m
    # Sheppard's correction: a fully covered pixel adds 1/12 of variance per axis
    vx = max((alpha * (xs - cx) ** 2).sum() / m - 1 / 12 - sigma ** 2, 1e-6)
    vy = max((alpha * (ys - cy) ** 2).sum() / m - 1 / 12 - sigma ** 2, 1e-6)
    out = {}
    for s in SHAPES:
        kx, ky = _VAR_K[s]
        bw, bh = np.sqrt(vx * kx), np.sqrt(vy * ky)
        bcy = cy - bh / 6 if s == "triangle" else cy  # a triangle's centroid sits h/6 below its box centre
        box = (cx - bw / 2, bcy - bh / 2, cx + bw / 2, bcy + bh / 2)
        t = _soft_template(s, box, w, h)
        if sigma > 0:
            t = ndimage.gaussian_filter(t, sigma, mode="constant")
        out[s] = (float(np.minimum(alpha, t).sum() / max(np.maximum(alpha, t).sum(), 1e-9)), box)
    return out


def _best_fit(alpha: np.ndarray) -> dict[str, tuple[float, tuple]]:
    """Sharp fit first; if no shape fits a sharp template well the image is probably blurred, so also try
    blurred templates and keep each shape's best."""
    fits = _fit_shapes(alpha)
    if max(v[0] for v in fits.values()) >= SHARP_IOU:
        return fits
    for sigma in BLUR_SIGMAS:
        for s, v in _fit_shapes(alpha, sigma).items():
            if v[0] > fits[s][0]:
                fits[s] = v
    return fits


def _clip01(v: float) -> float:
    return float(min(1.0, max(0.0, v)))


def _border(arr: np.ndarray, k: int = 2) -> np.ndarray:
    return np.concatenate([arr[:k].reshape(-1, 3), arr[-k:].reshape(-1, 3),
                           arr[:, :k].reshape(-1, 3), arr[:, -k:].reshape(-1, 3)])


def _nearest(colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((colors[:, None, :] - PALETTE[None]) ** 2).sum(-1))
    return d.argmin(1), d


def parse(image: Image.Image) -> ParseResult:
    """Detect the world's objects in ``image`` (PIL image of any size and mode)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float64)
    H, W = arr.shape[:2]
    frame = _border(arr)
    bg = np.median(frame, axis=0)
    noise = float(np.median(1.4826 * np.median(np.abs(frame - bg), axis=0)))
    # a brightness change scales the background too; undo it for colour naming only (clipped to +-33%)
    gain = float(np.clip(np.mean(BACKGROUND) / max(np.mean(bg), 1.0), 0.75, 1.33))
    dist = np.sqrt(((arr - bg) ** 2).sum(-1))
    fg = dist > max(0.3 * MIN_FG_DIST, 4.0 * noise)
    labels, n = ndimage.label(fg, structure=np.ones((3, 3), dtype=int))
    detections: dict[str, list[dict]] = {s: [] for s in SHAPES}
    unrecognised: list[dict] = []
    min_blob = MIN_BLOB * H * W
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        # pad the slice so rim pixels below the coarse threshold are still inside it
        sl = (slice(max(0, sl[0].start - PAD), min(H, sl[0].stop + PAD)),
              slice(max(0, sl[1].start - PAD), min(W, sl[1].stop + PAD)))
        comp = labels[sl] == k
        if comp.sum() < min_blob:
            continue
        for piece, color_idx in _split_by_color(arr[sl], comp, dist[sl], bg, gain):
            _measure(arr, sl, piece, color_idx, bg, gain, detections, unrecognised)
    for s in SHAPES:
        detections[s].sort(key=lambda d: -d["score"])  # list.sort is stable
    return ParseResult(detections, unrecognised, tuple(float(v) for v in bg), (W, H), noise)


def _core(pix: np.ndarray, d: np.ndarray) -> np.ndarray:
    core = d >= 0.6 * np.percentile(d, 90)
    return pix[core] if core.sum() >= 3 else pix


def _split_by_color(pix_sl, comp, dist_sl, bg, gain):
    """Yield (sub-mask, palette index or None) pieces of one component, split when it holds two colours."""
    pix = pix_sl[comp]
    core = _core(pix, dist_sl[comp])
    lab, _ = _nearest(core * gain)
    counts = np.bincount(lab, minlength=len(PALETTE)) / len(lab)
    order = np.argsort(-counts, kind="stable")
    keep = [int(i) for i in order if counts[i] >= 0.2]
    if counts[order[0]] >= 0.7 or len(keep) < 2:
        yield comp, int(order[0])
        return
    # assign every pixel to the closest of the significant colours, then split each colour into pieces
    full = pix_sl * gain
    d = np.stack([np.sqrt(((full - PALETTE[i]) ** 2).sum(-1)) for i in keep])
    assign = np.array(keep)[d.argmin(0)]
    for i in keep:
        sub, m = ndimage.label(comp & (assign == i), structure=np.ones((3, 3), dtype=int))
        for j in range(1, m + 1):
            yield sub == j, i


def _measure(arr, sl, piece, color_idx, bg, gain, detections, unrecognised) -> None:
    H, W = arr.shape[:2]
    pix_sl = arr[sl]
    d_sl = np.sqrt(((pix_sl - bg) ** 2).sum(-1))
    pix = pix_sl[piece]
    if piece.sum() < MIN_BLOB * H * W:
        return
    core = _core(pix, d_sl[piece])
    lab, dists = _nearest(core * gain)
    core = core[lab == color_idx] if (lab == color_idx).sum() >= 3 else core
    c_est = np.median(core, axis=0)
    axis = c_est - bg
    norm2 = max(float(axis @ axis), 1e-9)
    alpha_sl = np.where(piece, ((pix_sl - bg) @ axis) / norm2, 0.0)
    full_mask = np.zeros((H, W), dtype=bool)
    full_mask[sl] = alpha_sl > HALF
    area = int(full_mask.sum())
    box = mask_box(full_mask)
    if area < MIN_BLOB * H * W:
        return
    if area < MIN_OBJECT * H * W:
        unrecognised.append({"box": box, "area": area, "reason": "too small"})
        return
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    if not ASPECT[0] <= bw / bh <= ASPECT[1]:
        unrecognised.append({"box": box, "area": area, "reason": "elongated"})
        return
    # soft coverage of the piece grown by one pixel, so partially covered rim pixels count in the moments
    grown = ndimage.binary_dilation(piece, structure=np.ones((3, 3), dtype=bool), iterations=RIM)
    full_alpha = np.clip(((pix_sl - bg) @ axis) / norm2, 0.0, 1.0)
    alpha = np.zeros((H, W))
    alpha[sl] = np.where(grown & (full_alpha > 0.1), full_alpha, 0.0)
    py1, px1 = max(0, y1 - PAD), max(0, x1 - PAD)
    py2, px2 = min(H, y2 + PAD), min(W, x2 + PAD)
    fits_ = _best_fit(alpha[py1:py2, px1:px2])
    ranked = sorted(fits_, key=lambda s: -fits_[s][0])
    best, second = fits_[ranked[0]][0], fits_[ranked[1]][0]
    if best < IOU_MIN:
        unrecognised.append({"box": box, "area": area, "reason": "irregular shape"})
        return
    fb = fits_[ranked[0]][1]
    box = [round(float(v), 2) for v in (fb[0] + px1, fb[1] + py1, fb[2] + px1, fb[3] + py1)]
    cdist = np.sqrt(((c_est * gain - PALETTE) ** 2).sum(-1))
    ci = int(cdist.argmin())
    if cdist[ci] > COLOR_TOL:
        unrecognised.append({"box": box, "area": area, "reason": "unknown color"})
        return
    shape_conf = _clip01((best - IOU_MIN) / 0.2) * _clip01((best - second) / 0.1)
    color_conf = _clip01(1.0 - max(0.0, cdist[ci] - 0.3 * COLOR_TOL) / (0.7 * COLOR_TOL))
    extent = ((fb[2] - fb[0]) / W + (fb[3] - fb[1]) / H) / 2
    detections[ranked[0]].append({
        "box": box, "score": round(shape_conf * color_conf, 4), "mask": full_mask,
        "color": PALETTE_NAMES[ci], "size": "large" if extent > SIZE_SPLIT else "small",
    })


def parse_scene(image: Image.Image, threshold: float = 0.3) -> Scene:
    """Parse ``image`` and return the detected objects (score above ``threshold``) as a Scene."""
    return parse(image).to_scene(threshold)
