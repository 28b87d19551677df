"""Multiple-choice questions about a scene (MMBench, MMMU, NaturalBench style), answerable from text + options.

``answer_choice(question, options, scene)`` returns the index of the correct option on any scene (None when the
question is ill-posed there or no single option is right), so answers can be re-derived from a parsed image.
"""
from __future__ import annotations

import numpy as np

from .grammar import describes_exactly, list_phrase, parse_list, scene_groups
from .qgen import absent_classes, pick, sample_question
from .questions import (EXTREMES, compile_template, relation_target, answer_question, extreme_object, referring, resolve,
                        robust)
from .scene import CELLS, COLOR_NAMES, CORNERS, RELATIONS, REL_ANSWER, SHAPES, Scene


def _target_index(scene: Scene, options: list[str], target) -> int | None:
    if target is None:
        return None
    hits = [i for i, o in enumerate(options) if resolve(scene, o) is target]
    return hits[0] if len(hits) == 1 else None


def _unique(options: list[str], pred) -> int | None:
    hits = [i for i, o in enumerate(options) if pred(o)]
    return hits[0] if len(hits) == 1 else None


# name -> (template, evaluator(scene, slots, options) -> index or None)
MC_TEMPLATES = {
    "present": ("Which of these objects is in the image?",
                lambda sc, s, opts: _unique(opts, lambda o: bool(sc.select(*reversed(o.split()))))),
    "which_rel": ("Which object is {rel} the {ref}?",
                  lambda sc, s, opts: _target_index(sc, opts, relation_target(sc, s))),
    "which_extreme": ("Which object is the {extreme} one?",
                      lambda sc, s, opts: _target_index(sc, opts, extreme_object(sc, s["extreme"]))),
    "remove": ("If the {ref} were removed, how many objects would remain?",
               lambda sc, s, opts: None if resolve(sc, s["ref"]) is None
               else _unique(opts, lambda o: o == str(len(sc.objects) - 1))),
    "caption": ("Which description best fits the image?",
                lambda sc, s, opts: _unique(opts, lambda o: parse_list(o) is not None
                                            and describes_exactly(sc, parse_list(o)))),
}
_MC_PATTERNS = {name: compile_template(t[0]) for name, t in MC_TEMPLATES.items()}


def answer_choice(question: str, options: list[str], scene: Scene) -> int | None:
    """Index of the correct option for a world multiple-choice question on ``scene``."""
    q = question.strip()
    for name, rx in _MC_PATTERNS.items():
        m = rx.fullmatch(q)
        if m:
            slots = {k: v.lower() for k, v in m.groupdict().items()}
            return MC_TEMPLATES[name][1](scene, slots, list(options))
    ans = answer_question(q, scene)
    return None if ans is None else _unique(list(options), lambda o: o == ans)


def _distractors(family: str, answer: str, rng, k: int) -> list[str]:
    if family in ("color", "extreme_color", "rel_color"):
        pool = [c for c in COLOR_NAMES if c != answer]
    elif family in ("shape", "extreme_shape", "rel_shape"):
        pool = [s for s in SHAPES if s != answer]
    elif family == "where":
        pool = [c for c in CELLS if c != answer]
    elif family == "where_rel":
        pool = [REL_ANSWER[r] for r in RELATIONS if REL_ANSWER[r] != answer]
    elif family == "size":
        pool = ["small", "large"]
        pool.remove(answer)
    elif family == "corners":
        pool = [str(v) for v in sorted(set(CORNERS.values()) | {5, 6}) if str(v) != answer]
    else:  # numbers: the closest alternatives
        n = int(answer)
        pool = sorted((str(v) for v in range(max(0, n - 3), n + 4) if v != n), key=lambda v: (abs(int(v) - n), v))
        return pool[:k]
    return [pool[i] for i in rng.permutation(len(pool))[:k]]


def _shuffle(rng, correct: str, others: list[str]) -> tuple[list[str], int]:
    opts = [correct] + others
    order = [int(i) for i in rng.permutation(len(opts))]
    return [opts[i] for i in order], order.index(0)


def _object_options(scene: Scene, rng, target, k: int) -> list[str] | None:
    right = referring(scene, target, rng)
    if right is None:
        return None
    others = [referring(scene, o, rng) for o in scene.objects if o is not target]
    others = [o for o in others if o and o != right]
    others += [f"{c} {s}" for c, s in absent_classes(scene, True)]
    uniq = list(dict.fromkeys(others))
    uniq = [uniq[i] for i in rng.permutation(len(uniq))][:k]
    return [right] + uniq if len(uniq) == k else None


def _caption_options(scene: Scene, rng, k: int) -> list[str] | None:
    groups = scene_groups(scene)
    right = list_phrase(groups)
    wrong: list[str] = []
    for _ in range(40):
        g = [dict(x) for x in groups]
        i = int(rng.integers(len(g)))
        kind = rng.random()
        if kind < 0.4:
            g[i]["color"] = pick(rng, [c for c in COLOR_NAMES if c != g[i]["color"]])
        elif kind < 0.8:
            g[i]["shape"] = pick(rng, [s for s in SHAPES if s != g[i]["shape"]])
        else:
            g[i]["count"] = max(1, g[i]["count"] + pick(rng, [-1, 1]))
        text = list_phrase(g)
        if text != right and text not in wrong and not describes_exactly(scene, g):
            wrong.append(text)
        if len(wrong) == k:
            return [right] + wrong
    return None


MC_FAMILIES = ("color", "count", "where", "where_rel", "corners", "present", "which_rel", "which_extreme",
               "remove", "caption", "count_not", "extreme_color", "rel_color")


def sample_choice(scene: Scene, rng: np.random.Generator, family: str, n_options: int = 4,
                  tries: int = 20) -> dict | None:
    """{question, options, answer (index), family} with ``n_options`` options, or None."""
    k = n_options - 1
    for _ in range(tries):
        if family in MC_TEMPLATES:
            slots: dict = {}
            if family == "which_rel":
                o = pick(rng, scene.objects)
                slots = {"ref": referring(scene, o, rng), "rel": pick(rng, RELATIONS)}
                if slots["ref"] is None:
                    continue
                target = relation_target(scene, slots)
                opts = None if target is None else _object_options(scene, rng, target, k)
            elif family == "which_extreme":
                slots = {"extreme": pick(rng, EXTREMES)}
                target = extreme_object(scene, slots["extreme"]) if len(scene.objects) > 1 else None
                opts = None if target is None else _object_options(scene, rng, target, k)
            elif family == "present":
                o = pick(rng, scene.objects)
                absent = [f"{c} {s}" for c, s in absent_classes(scene, True)]
                picks = [absent[i] for i in rng.permutation(len(absent))[:k]]
                opts = [f"{o.color} {o.shape}"] + picks if len(picks) == k else None
            elif family == "remove":
                slots = {"ref": referring(scene, pick(rng, scene.objects), rng)}
                opts = None if slots["ref"] is None else [str(len(scene.objects) - 1)] + _distractors(
                    "count", str(len(scene.objects) - 1), rng, k)
            else:
                opts = _caption_options(scene, rng, k)
            if opts is None:
                continue
            question = MC_TEMPLATES[family][0].format(**slots)
            options, answer = _shuffle(rng, opts[0], opts[1:])
        else:
            q = sample_question(scene, rng, family)
            if q is None:
                continue
            others = _distractors(family, q["answer"], rng, k)
            if len(others) < k:
                continue
            question = q["question"]
            options, answer = _shuffle(rng, q["answer"], others)
        if robust(lambda sc: answer_choice(question, options, sc), scene) == answer:
            return {"question": question, "options": options, "answer": answer, "family": family}
    return None

