"""Sampling well-posed open questions for a scene (the slot choosers behind ``questions.TEMPLATES``).

Yes/no families draw the intended answer first (50/50) so datasets built from them are balanced by construction.
"""
from __future__ import annotations

import numpy as np

from .questions import (BASIC, EXTREMES, HARD, TEMPLATES, relation_target, all_pairs, describe, extreme_object,
                        referring, render_question, robust)
from .scene import COLOR_NAMES, PLURALS, RELATIONS, SHAPES, Scene


def pick(rng: np.random.Generator, seq):
    seq = list(seq)
    return seq[int(rng.integers(len(seq)))]


def absent_classes(scene: Scene, distractor: bool) -> list[tuple[str, str]]:
    present = {(o.color, o.shape) for o in scene.objects}
    out = [(c, s) for c in COLOR_NAMES for s in SHAPES if (c, s) not in present]
    if distractor:
        near = [(c, s) for c, s in out if any(c == pc or s == ps for pc, ps in present)]
        out = near or out
    return out


def _group(scene: Scene, rng) -> str:
    r = rng.random()
    if r < 0.2:
        return "objects"
    if r < 0.55:
        return PLURALS[pick(rng, SHAPES)]
    if r < 0.85:
        o = pick(rng, scene.objects)
        return f"{o.color} {PLURALS[o.shape]}"
    return f"{pick(rng, COLOR_NAMES)} objects"


def _ref_slot(scene, rng, avoid=None):
    ref = referring(scene, pick(rng, scene.objects), rng, avoid)
    return None if ref is None else {"ref": ref}


def _exist(scene, rng):
    if rng.random() < 0.5:
        o = pick(rng, scene.objects)
        return {"desc": describe(o, pick(rng, [("color", "shape"), ("color", "shape"), ("shape",),
                                               ("size", "color", "shape")]))}
    c, s = pick(rng, absent_classes(scene, rng.random() < 0.6))
    return {"desc": f"{c} {s}"}


def _any(scene, rng):
    if rng.random() < 0.5:
        o = pick(rng, scene.objects)
        return {"group": pick(rng, [f"{o.color} {PLURALS[o.shape]}", PLURALS[o.shape], f"{o.color} objects"])}
    c, s = pick(rng, absent_classes(scene, True))
    colors = {o.color for o in scene.objects}
    shapes = {o.shape for o in scene.objects}
    opts = [f"{c} {PLURALS[s]}"] + ([f"{c} objects"] if c not in colors else [])
    opts += [PLURALS[x] for x in SHAPES if x not in shapes]
    return {"group": pick(rng, opts)}


def _pair_slots(scene, rng, axis=None, yn=False):
    pairs = all_pairs(scene)
    if axis == "h":
        pairs = [p for p in pairs if p[2] in ("left of", "right of")]
    elif axis == "v":
        pairs = [p for p in pairs if p[2] in ("above", "below")]
    if not pairs:
        return None
    a, b, rel = pick(rng, pairs)
    ra, rb = referring(scene, a, rng), referring(scene, b, rng)
    if ra is None or rb is None:
        return None
    slots = {"ref": ra, "ref2": rb}
    if yn:
        slots["rel"] = rel if rng.random() < 0.5 else pick(rng, [r for r in RELATIONS if r != rel])
    return slots


def _where(scene, rng):
    o = pick(rng, scene.objects)
    # keep away from the 3x3 cell borders so small localisation errors cannot change the cell
    if min(abs(v - t) for v in (o.x, o.y) for t in (1 / 3, 2 / 3)) < 0.04:
        return None
    ref = referring(scene, o, rng)
    return None if ref is None else {"ref": ref}


def _exist_not(scene, rng):
    o = pick(rng, scene.objects)
    colors = {p.color for p in scene.objects if p.shape == o.shape}
    if rng.random() < 0.5:  # aim for "no": every object of this shape has the asked colour
        return {"shape": o.shape, "color": o.color} if colors == {o.color} else None
    if len(colors) > 1:
        return {"shape": o.shape, "color": o.color}
    return {"shape": o.shape, "color": pick(rng, [c for c in COLOR_NAMES if c != o.color])}


def _rel_target_slots(scene, rng):
    o = pick(rng, scene.objects)
    ref = referring(scene, o, rng)
    if ref is None:
        return None
    slots = {"ref": ref, "rel": pick(rng, RELATIONS)}
    return slots if relation_target(scene, slots) is not None else None


def _extreme(scene, rng):
    which = pick(rng, EXTREMES)
    return {"extreme": which} if len(scene.objects) > 1 and extreme_object(scene, which) else None


def _same_color(scene, rng):
    objs = scene.objects
    pairs = [(a, b) for i, a in enumerate(objs) for b in objs[i + 1:]]
    want_same = rng.random() < 0.5
    pairs = [p for p in pairs if (p[0].color == p[1].color) == want_same]
    if not pairs:
        return None
    a, b = pick(rng, pairs)
    if rng.random() < 0.5:
        a, b = b, a
    ra, rb = referring(scene, a, rng, "color"), referring(scene, b, rng, "color")
    return None if ra is None or rb is None or ra == rb else {"ref": ra, "ref2": rb}


def _two_colors(scene, rng):
    present = sorted({o.color for o in scene.objects})
    c1 = pick(rng, present)
    c2 = pick(rng, [c for c in COLOR_NAMES if c != c1])
    return {"color": c1, "color2": c2}


SAMPLERS = {
    "count": lambda sc, r: {"group": _group(sc, r)},
    "color": lambda sc, r: _ref_slot(sc, r, "color"),
    "shape": lambda sc, r: _ref_slot(sc, r, "shape"),
    "size": lambda sc, r: _ref_slot(sc, r, "size"),
    "exist": _exist,
    "any": _any,
    "lr": lambda sc, r: _pair_slots(sc, r, "h"),
    "ab": lambda sc, r: _pair_slots(sc, r, "v"),
    "where_rel": lambda sc, r: _pair_slots(sc, r),
    "rel_yn": lambda sc, r: _pair_slots(sc, r, yn=True),
    "where": _where,
    "count_not": lambda sc, r: {"color": pick(r, sorted({o.color for o in sc.objects}))},
    "count_shape_not": lambda sc, r: {"shapes": PLURALS[pick(r, sc.objects).shape],
                                      "color": pick(r, sorted({o.color for o in sc.objects}))},
    "exist_not": _exist_not,
    "count_or": _two_colors,
    "corners": lambda sc, r: _ref_slot(sc, r, "shape" if r.random() < 0.5 else None),
    "corners_total": lambda sc, r: {},
    "count_cornered": lambda sc, r: {},
    "rel_color": _rel_target_slots,
    "rel_shape": _rel_target_slots,
    "extreme_color": _extreme,
    "extreme_shape": _extreme,
    "same_color": _same_color,
}


def sample_question(scene: Scene, rng: np.random.Generator, family: str, tries: int = 20) -> dict | None:
    """One question of ``family`` about ``scene``: {question, answer, family, answer_type, question_type}."""
    answer_type, question_type, evaluate = TEMPLATES[family][1], TEMPLATES[family][2], TEMPLATES[family][3]
    for _ in range(tries):
        slots = SAMPLERS[family](scene, rng)
        if slots is None:
            continue
        ans = robust(lambda sc: evaluate(sc, slots), scene)
        if ans is not None:
            return {"question": render_question(family, slots), "answer": ans, "family": family,
                    "answer_type": answer_type, "question_type": question_type}
    return None


def sample_questions(scene: Scene, rng: np.random.Generator, n: int, families=BASIC) -> list[dict]:
    """Up to ``n`` distinct questions, families drawn uniformly; yes/no answers balanced per family."""
    out: list[dict] = []
    seen: set[str] = set()
    for _ in range(n * 8):
        if len(out) >= n:
            break
        q = sample_question(scene, rng, pick(rng, families))
        if q is not None and q["question"] not in seen:
            seen.add(q["question"])
            out.append(q)
    return out


ALL_FAMILIES = BASIC + HARD + ("where",)
