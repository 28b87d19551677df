"""MMBench in the world (lmms-lab/MMBench "en" dev schema), with every CircularEval pass as its own row.

Each question has 4 options; pass k (k = 0..3) rotates the options cyclically by k and has
``index = base + k * 1_000_000``, as in the official TSVs. Categories use MMBench's L3 ability names and its six
L2 names.
"""
from __future__ import annotations

from harness.world.choices import sample_choice
from harness.world.qgen import pick
from harness.world.render import render
from harness.world.scene import rng_for, sample_scene

MMBENCH_COLUMNS = ("index", "question", "hint", "answer", "A", "B", "C", "D", "category", "L2-category", "image",
                   "source", "comment", "split")
L2 = ("coarse_perception", "finegrained_perception (instance-level)", "finegrained_perception (cross-instance)",
      "attribute_reasoning", "relation_reasoning", "logic_reasoning")
# question family -> (L3 category, L2 category)
FAMILIES = {
    "caption": ("image_scene", L2[0]),
    "present": ("image_topic", L2[0]),
    "color": ("attribute_recognition", L2[1]),
    "where": ("object_localization", L2[1]),
    "where_rel": ("spatial_relationship", L2[2]),
    "which_rel": ("spatial_relationship", L2[2]),
    "count": ("attribute_comparison", L2[2]),
    "corners": ("physical_property_reasoning", L2[3]),
    "which_extreme": ("physical_relation", L2[4]),
    "extreme_color": ("physical_relation", L2[4]),
    "remove": ("future_prediction", L2[5]),
    "count_not": ("structuralized_imagetext_understanding", L2[5]),
}
HINTS = ("The image shows flat shapes on a plain gray background.",
         "Every object in the image is a circle, a square or a triangle.")
TEXTS = HINTS + tuple(v[0].replace("_", " ") for v in FAMILIES.values()) + L2
LETTERS = "ABCD"


def build_mmbench(n: int = 60, seed: int = 0, size: int = 64) -> list[dict]:
    """``n`` four-option questions, ``4 * n`` rows (all circular passes; pass-0 rows first)."""
    fams = list(FAMILIES)
    base: list[dict] = []
    i = 0
    while len(base) < n:
        rng = rng_for("eval", "mmbench", seed, i)
        i += 1
        fam = fams[len(base) % len(fams)]  # families take turns so every L2 category is represented
        scene = sample_scene(rng, int(rng.integers(2, 5)))
        q = sample_choice(scene, rng, fam, n_options=4)
        if q is None:
            continue
        hint = pick(rng, HINTS) if rng.random() < 0.3 else None
        base.append({"q": q, "hint": hint, "image": render(scene, size), "family": fam})
    rows = []
    for k in range(4):
        for idx, b in enumerate(base):
            opts = b["q"]["options"]
            rotated = [opts[(j + k) % 4] for j in range(4)]
            category, l2 = FAMILIES[b["family"]]
            rows.append({"index": idx + k * 1_000_000, "question": b["q"]["question"], "hint": b["hint"],
                         "answer": LETTERS[(b["q"]["answer"] - k) % 4], **dict(zip(LETTERS, rotated)),
                         "category": category, "L2-category": l2, "image": b["image"], "source": "world",
                         "comment": None, "split": "dev"})
    return rows
