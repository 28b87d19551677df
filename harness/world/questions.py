"""Open questions about a scene, as templates that can both be generated and answered.

Every template is a sentence with slots. ``answer_question(text, scene)`` matches the text against all templates
and evaluates it on any scene (returning None when the question is ill-posed there, e.g. the referred object is
not unique), so answers can always be re-derived, e.g. from a parsed image. Generators only ask questions that are
unambiguous with a safety margin (relations stable under small position errors, extremes at least 0.1 apart,
references unique), so a parsed render gives the same answer.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from .scene import (COLOR_NAMES, CORNERS, PLURALS, REL_ANSWER, RELATIONS, SHAPES, SIZE_NAMES, Obj, Scene,
                    relation)

SINGULAR = {v: k for k, v in PLURALS.items()}
EXTREMES = {"leftmost": (0, 1), "rightmost": (0, -1), "topmost": (1, 1), "bottommost": (1, -1)}
_C = "|".join(COLOR_NAMES)
_REF = rf"(?:(?:small|large) )?(?:(?:{_C}) )?(?:circle|square|triangle|object)"
SLOTS = {
    "ref": _REF, "ref2": _REF, "desc": _REF,
    "group": rf"(?:(?:{_C}) )?(?:circles|squares|triangles|objects)",
    "color": _C, "color2": _C, "shape": "circle|square|triangle", "shapes": "circles|squares|triangles",
    "shapes2": "circles|squares|triangles",
    "rel": "|".join(RELATIONS), "extreme": "|".join(EXTREMES),
}


def parse_ref(text: str) -> dict:
    """'large red circle' -> {'size': 'large', 'color': 'red', 'shape': 'circle'} (missing keys = any)."""
    out: dict = {}
    for w in text.split():
        if w in SIZE_NAMES:
            out["size"] = w
        elif w in COLOR_NAMES:
            out["color"] = w
        elif w in SHAPES:
            out["shape"] = w
        elif w in SINGULAR:
            out["shape"] = SINGULAR[w]
    return out


def matches(o: Obj, spec: dict) -> bool:
    return all(getattr(o, k) == v for k, v in spec.items())


def resolve(scene: Scene, text: str) -> Obj | None:
    """The unique object a referring expression denotes, or None."""
    spec = parse_ref(text)
    found = [o for o in scene.objects if matches(o, spec)]
    return found[0] if len(found) == 1 else None


def stable_relation(a: Obj, b: Obj, margin: float = 0.01) -> str | None | bool:
    """relation(a, b) if it is the same under +-margin position errors, else False."""
    rels = {relation(Obj(a.shape, a.color, a.size, a.x + ex, a.y + ey), b)
            for ex in (-margin, 0, margin) for ey in (-margin, 0, margin)}
    return rels.pop() if len(rels) == 1 else False


def extreme_object(scene: Scene, which: str, gap: float = 0.1) -> Obj | None:
    axis, sign = EXTREMES[which]
    objs = sorted(scene.objects, key=lambda o: sign * (o.x, o.y)[axis])
    if not objs or (len(objs) > 1 and abs((objs[0].x, objs[0].y)[axis] - (objs[1].x, objs[1].y)[axis]) < gap):
        return None
    return objs[0]


def _yn(v: bool) -> str:
    return "yes" if v else "no"


def _count(scene: Scene, group: str) -> int:
    return sum(matches(o, parse_ref(group)) for o in scene.objects)


def relation_target(scene: Scene, s: dict) -> Obj | None:
    ref = resolve(scene, s["ref"])
    if ref is None:
        return None
    others = [o for o in scene.objects if o is not ref]
    if any(stable_relation(o, ref) is False for o in others):
        return None
    hits = [o for o in others if relation(o, ref) == s["rel"]]
    return hits[0] if len(hits) == 1 else None


def _pair(scene: Scene, s: dict):
    a, b = resolve(scene, s["ref"]), resolve(scene, s["ref2"])
    if a is None or b is None or a is b:
        return None
    return relation(a, b)


def _attr(obj: Obj | None, name: str) -> str | None:
    return None if obj is None else getattr(obj, name)


# name -> (template, VQA answer_type, VQA question_type, evaluator(scene, slots) -> answer or None)
TEMPLATES: dict[str, tuple[str, str, str, Callable]] = {
    "count": ("How many {group} are there?", "number", "how many", lambda sc, s: str(_count(sc, s["group"]))),
    "color": ("What color is the {ref}?", "other", "what color is the",
              lambda sc, s: _attr(resolve(sc, s["ref"]), "color")),
    "shape": ("What is the shape of the {ref}?", "other", "what is the",
              lambda sc, s: _attr(resolve(sc, s["ref"]), "shape")),
    "size": ("Is the {ref} small or large?", "other", "is the", lambda sc, s: _attr(resolve(sc, s["ref"]), "size")),
    "exist": ("Is there a {desc} in the image?", "yes/no", "is there a",
              lambda sc, s: _yn(_count(sc, s["desc"]) > 0)),
    "any": ("Are there any {group}?", "yes/no", "are there", lambda sc, s: _yn(_count(sc, s["group"]) > 0)),
    "lr": ("Is the {ref} to the left or to the right of the {ref2}?", "other", "is the",
           lambda sc, s: {"left of": "left", "right of": "right"}.get(_pair(sc, s))),
    "ab": ("Is the {ref} above or below the {ref2}?", "other", "is the",
           lambda sc, s: {"above": "above", "below": "below"}.get(_pair(sc, s))),
    "where_rel": ("Where is the {ref} relative to the {ref2}?", "other", "where is the",
                  lambda sc, s: REL_ANSWER.get(_pair(sc, s))),
    "rel_yn": ("Is the {ref} {rel} the {ref2}?", "yes/no", "is the",
               lambda sc, s: None if _pair(sc, s) is None else _yn(_pair(sc, s) == s["rel"])),
    "where": ("Where is the {ref} in the image?", "other", "where is the",
              lambda sc, s: _attr(resolve(sc, s["ref"]), "cell")),
    # harder families (AdVQA): negation, disjunction, world knowledge, relational and superlative references
    "count_not": ("How many objects are not {color}?", "number", "how many",
                  lambda sc, s: str(sum(o.color != s["color"] for o in sc.objects))),
    "count_shape_not": ("How many {shapes} are not {color}?", "number", "how many",
                        lambda sc, s: str(sum(o.shape == SINGULAR[s["shapes"]] and o.color != s["color"]
                                              for o in sc.objects))),
    "exist_not": ("Is there a {shape} that is not {color}?", "yes/no", "is there a",
                  lambda sc, s: _yn(any(o.shape == s["shape"] and o.color != s["color"] for o in sc.objects))),
    "count_or": ("How many objects are {color} or {color2}?", "number", "how many",
                 lambda sc, s: str(sum(o.color in (s["color"], s["color2"]) for o in sc.objects))),
    "corners": ("How many corners does the {ref} have?", "number", "how many",
                lambda sc, s: None if resolve(sc, s["ref"]) is None else str(CORNERS[resolve(sc, s["ref"]).shape])),
    "corners_total": ("How many corners are there in total?", "number", "how many",
                      lambda sc, s: str(sum(CORNERS[o.shape] for o in sc.objects))),
    "count_cornered": ("How many objects have corners?", "number", "how many",
                       lambda sc, s: str(sum(CORNERS[o.shape] > 0 for o in sc.objects))),
    "rel_color": ("What color is the object {rel} the {ref}?", "other", "what color is the",
                  lambda sc, s: _attr(relation_target(sc, s), "color")),
    "rel_shape": ("What is the shape of the object {rel} the {ref}?", "other", "what is the",
                  lambda sc, s: _attr(relation_target(sc, s), "shape")),
    "extreme_color": ("What color is the {extreme} object?", "other", "what color is the",
                      lambda sc, s: _attr(extreme_object(sc, s["extreme"]), "color")),
    "extreme_shape": ("What is the shape of the {extreme} object?", "other", "what is the",
                      lambda sc, s: _attr(extreme_object(sc, s["extreme"]), "shape")),
    "same_color": ("Are the {ref} and the {ref2} the same color?", "yes/no", "are the",
                   lambda sc, s: None if None in (resolve(sc, s["ref"]), resolve(sc, s["ref2"]))
                   or s["ref"] == s["ref2"] else _yn(resolve(sc, s["ref"]).color == resolve(sc, s["ref2"]).color)),
}
BASIC = ("count", "color", "shape", "size", "exist", "any", "lr", "ab", "rel_yn", "where_rel")
HARD = ("count_not", "count_shape_not", "exist_not", "count_or", "corners", "corners_total", "count_cornered",
        "rel_color", "rel_shape", "extreme_color", "extreme_shape", "same_color")


def compile_template(template: str) -> re.Pattern:
    parts = re.split(r"(\{[a-z0-9]+\})", template)
    rx = "".join(f"(?P<{p[1:-1]}>{SLOTS[p[1:-1]]})" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(rx, re.IGNORECASE)


_PATTERNS = {name: compile_template(t[0]) for name, t in TEMPLATES.items()}


def match_question(text: str) -> tuple[str, dict] | None:
    """(family, slots) of a world question, or None if the text is not one."""
    text = text.strip()
    for name, rx in _PATTERNS.items():
        m = rx.fullmatch(text)
        if m:
            return name, {k: v.lower() for k, v in m.groupdict().items()}
    return None


def answer_question(text: str, scene: Scene) -> str | None:
    """Ground-truth short answer of a world question on ``scene``; None if ill-posed or unknown."""
    hit = match_question(text)
    if hit is None:
        return None
    return TEMPLATES[hit[0]][3](scene, hit[1])


def render_question(family: str, slots: dict) -> str:
    text = TEMPLATES[family][0].format(**slots)
    return text[0].upper() + text[1:]


# ---------------------------------------------------------------- referring expressions for generation
_FORMS = (("shape",), ("color",), ("size",), ("color", "shape"), ("size", "shape"), ("size", "color"),
          ("size", "color", "shape"))  # shortest first


def describe(o: Obj, attrs: tuple[str, ...]) -> str:
    words = [getattr(o, a) for a in ("size", "color", "shape") if a in attrs]
    return " ".join(words) if "shape" in attrs else " ".join(words + ["object"])


def referring(scene: Scene, o: Obj, rng: np.random.Generator, avoid: str | None = None) -> str | None:
    """A random short description that denotes ``o`` uniquely, never using attribute ``avoid``."""
    ok = [f for f in _FORMS if avoid not in f and resolve(scene, describe(o, f)) is o]
    if not ok:
        return None
    shortest = [f for f in ok if len(f) == len(ok[0])] if rng.random() < 0.7 else ok
    return describe(o, shortest[int(rng.integers(len(shortest)))])


def perturbed(scene: Scene, k: int, d: float = 0.004) -> Scene:
    """``scene`` with every centre moved by a fixed pseudo-random offset of at most ``d`` (pattern ``k``):
    more than a parser's localisation error on clean renders (about 0.15 px at 64 px = 0.0025)."""
    off = np.random.default_rng(k).uniform(-d, d, size=(len(scene.objects), 2))
    return Scene(tuple(Obj(o.shape, o.color, o.size, o.x + dx, o.y + dy) for o, (dx, dy) in zip(scene.objects, off)),
                 scene.background)


def robust(fn: Callable[[Scene], object], scene: Scene, patterns: int = 6):
    """``fn(scene)`` if it is unchanged on slightly perturbed copies of the scene, else None. Generators use
    it so that an answer never hinges on sub-pixel positions."""
    def key(v, sc: Scene):  # objects compare by position in the scene, since perturbing moves them
        return ("object", sc.objects.index(v)) if isinstance(v, Obj) else v

    value = fn(scene)
    ref = key(value, scene)
    for k in range(patterns):
        p = perturbed(scene, k)
        if key(fn(p), p) != ref:
            return None
    return value


def all_pairs(scene: Scene) -> list[tuple[Obj, Obj, str]]:
    return [(a, b, relation(a, b)) for a in scene.objects for b in scene.objects
            if a is not b and relation(a, b) is not None and stable_relation(a, b) is not False]
