"""Binary masks as compact JSON: COCO's uncompressed run-length encoding, and mask -> box.

RLE: {"size": [h, w], "counts": [n0, n1, n2, ...]} — run lengths over the mask read in column-major (Fortran)
order, starting with a run of zeros (0 when the first pixel is set). This is COCO's uncompressed RLE, so
pycocotools.mask.frPyObjects accepts it as is.
"""
from __future__ import annotations

import numpy as np


def rle_encode(mask) -> dict:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    h, w = m.shape
    flat = (m != 0).ravel(order="F").astype(np.int8)
    if flat.size == 0:
        return {"size": [int(h), int(w)], "counts": []}
    change = np.flatnonzero(np.diff(flat)) + 1               # where a new run starts
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(h), int(w)], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict) -> np.ndarray:
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h * w} for size {h}x{w}")
    values = np.arange(len(counts)) % 2                     # runs alternate 0, 1, 0, ...
    flat = np.repeat(values.astype(bool), counts)
    return flat.reshape((w, h)).T.copy()                    # column-major back to (h, w)


def rle_area(rle: dict) -> int:
    return int(sum(rle["counts"][1::2]))


def mask_to_box(mask) -> list[float]:
    """[x1, y1, x2, y2] around the set pixels, x2/y2 one past the last set column/row (mmdetection's mask2bbox,
    which is how its Mask2Former produces boxes); [0, 0, 0, 0] for an empty mask."""
    m = np.asarray(mask) != 0
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    if len(cols) == 0 or len(rows) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]
