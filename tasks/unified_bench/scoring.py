"""UnifiedBench ("Protocol-1") scoring: similarity between each reference image and the model's
caption -> regenerate reconstruction, averaged per backbone (0-100) and then over backbones.

Sources: the UAE code release (`Unified-Bench/Score_i2i.py`, `demo.py`) and the UniGame paper, which names
CLIP, SigLIP, DINOv2 and DreamSim. Both backbone sets are supported; results record which one was used.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

BACKBONE_SETS = {
    "unigame": ("clip", "siglip", "dinov2", "dreamsim"),
    "uae": ("clip", "longclip", "dinov2", "dinov3"),
}
FAILURE_MODES = ("zero", "exclude")

# UAE demo.py captioning prompt, byte-exact: two spaces before each newline and a trailing space.
CAPTION_PROMPT = (
    "You are an expert vision-language model.  \n"
    "Your task is: Given an input image, generate a **textual description** of the image. "
    "If there is text in the image, transcribe it inside double quotes \"\".  \n"
    "Now, carefully analyze the input image and output the full description. "
)

Similarities = Union[Sequence[Optional[float]], Mapping[str, Optional[float]]]


# torch.nn.functional.normalize's default eps: UAE normalises every embedding as x / max(||x||, eps)
NORMALIZE_EPS = 1e-12


def cosine_similarity(a, b) -> Union[float, np.ndarray]:
    """Cosine of L2-normalised vectors, normalised as UAE does (F.normalize: x / max(||x||, 1e-12)), so an all-zero
    embedding gives similarity 0 rather than an error; row-wise for 2-D inputs of equal shape."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise ValueError(f"embeddings must be equal-shaped 1-D or 2-D arrays, got {a.shape} and {b.shape}")
    na = np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), NORMALIZE_EPS)
    nb = np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), NORMALIZE_EPS)
    sims = np.sum((a / na) * (b / nb), axis=-1)
    return float(sims) if sims.ndim == 0 else sims


def dreamsim_similarity(distance):
    """DreamSim reports a distance d = 1 - cos; the similarity averaged with the other backbones is 1 - d."""
    if distance is None:
        return None
    if isinstance(distance, (list, tuple, np.ndarray)):
        return [dreamsim_similarity(d) for d in distance]
    return 1.0 - float(distance)


def _values(sims: Similarities) -> list[Optional[float]]:
    items = list(sims.values()) if isinstance(sims, Mapping) else list(sims)
    out = []
    for v in items:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            out.append(float(v))
    return out


def backbone_score(similarities: Similarities, failure_mode: str = "zero") -> dict[str, Any]:
    """Mean similarity of one backbone on a 0-100 scale. None (or NaN) marks a failed round trip:
    "zero" counts it as similarity 0 (our rule), "exclude" drops it (UAE's Score_i2i.py)."""
    if failure_mode not in FAILURE_MODES:
        raise ValueError(f"failure_mode must be one of {FAILURE_MODES}, got {failure_mode!r}")
    values = _values(similarities)
    failed = sum(v is None for v in values)
    used = [0.0 if v is None else v for v in values] if failure_mode == "zero" else \
        [v for v in values if v is not None]
    mean = sum(used) / len(used) if used else None
    return {
        "score": None if mean is None else 100.0 * mean,
        "mean": mean,
        "n_pairs": len(values),
        "n_failed": failed,
        "n_used": len(used),
        "min": min(used) if used else None,
        "max": max(used) if used else None,
    }


def aggregate(similarities: Mapping[str, Similarities], backbone_set: str = "unigame",
              failure_mode: str = "zero") -> dict[str, Any]:
    """Per-backbone scores and Overall (mean over the set's backbones, 0-100).

    `similarities` maps backbone name -> per-image similarities (already 1 - d for DreamSim; see
    `dreamsim_similarity`). Every backbone of the set must be present: UAE's script silently drops a
    backbone that failed to load, which changes what Overall means, so that is an error here.
    """
    if backbone_set not in BACKBONE_SETS:
        raise ValueError(f"unknown backbone set {backbone_set!r}; expected one of {', '.join(BACKBONE_SETS)}")
    names = BACKBONE_SETS[backbone_set]
    missing = [b for b in names if b not in similarities]
    extra = [b for b in similarities if b not in names]
    if missing or extra:
        raise ValueError(f"backbone set {backbone_set!r} needs exactly {', '.join(names)}; "
                         f"missing {missing or 'none'}, unexpected {extra or 'none'}")
    counts = {b: len(_values(similarities[b])) for b in names}
    if len(set(counts.values())) != 1:
        raise ValueError(f"backbones scored different numbers of images: {counts}")
    per_backbone = {b: backbone_score(similarities[b], failure_mode) for b in names}
    scores = [per_backbone[b]["score"] for b in names]
    overall = None if any(s is None for s in scores) else sum(scores) / len(scores)
    return {
        "overall": overall,
        "overall_fraction": None if overall is None else overall / 100.0,
        "per_backbone": per_backbone,
        "backbone_set": backbone_set,
        "backbones": list(names),
        "failure_mode": failure_mode,
        "n_images": next(iter(counts.values())),
        "n_failed": max(p["n_failed"] for p in per_backbone.values()),
    }


def overall_from_scores(scores: Mapping[str, float], backbone_set: str = "unigame") -> float:
    """Overall from already-averaged per-backbone scores (e.g. a paper's table row)."""
    names = BACKBONE_SETS[backbone_set]
    missing = [b for b in names if b not in scores]
    if missing:
        raise ValueError(f"missing backbone scores: {', '.join(missing)}")
    return sum(float(scores[b]) for b in names) / len(names)
