"""GenEval metadata in the world: GenEval's six tags, in GenEval's proportions, with shapes as classes and
GenEval's own prompt templates. ``reference_scene`` draws a scene that satisfies a row (for tests and training).
"""
from __future__ import annotations

import numpy as np

from harness.world.grammar import number_word
from harness.world.questions import stable_relation
from harness.world.scene import COLOR_NAMES, PLURALS, RELATIONS, SHAPES, Scene, rng_for, sample_until

# tag -> number of prompts in GenEval's 553 (evaluation_metadata.jsonl)
TAG_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
              "color_attr": 100}
TEXTS = ("a photo of",)


def _candidates(tag: str) -> list[dict]:
    pairs = [(a, b) for a in SHAPES for b in SHAPES if a != b]
    if tag == "single_object":
        return [{"tag": tag, "include": [{"class": s, "count": 1}], "prompt": f"a photo of a {s}"} for s in SHAPES]
    if tag == "two_object":
        return [{"tag": tag, "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
                 "prompt": f"a photo of a {a} and a {b}"} for a, b in pairs]
    if tag == "counting":
        return [{"tag": tag, "include": [{"class": s, "count": n}], "exclude": [{"class": s, "count": n + 1}],
                 "prompt": f"a photo of {number_word(n)} {PLURALS[s]}"} for s in SHAPES for n in (2, 3, 4)]
    if tag == "colors":
        return [{"tag": tag, "include": [{"class": s, "count": 1, "color": c}], "prompt": f"a photo of a {c} {s}"}
                for c in COLOR_NAMES for s in SHAPES]
    if tag == "position":
        return [{"tag": tag, "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [r, 0]}],
                 "prompt": f"a photo of a {a} {r} a {b}"} for a, b in pairs for r in RELATIONS]
    if tag == "color_attr":
        return [{"tag": tag, "include": [{"class": a, "count": 1, "color": c1}, {"class": b, "count": 1, "color": c2}],
                 "prompt": f"a photo of a {c1} {a} and a {c2} {b}"}
                for a, b in pairs for c1 in COLOR_NAMES for c2 in COLOR_NAMES if c1 != c2]
    raise ValueError(tag)


def tag_counts(n: int) -> dict[str, int]:
    """GenEval's tag shares applied to ``n`` prompts (largest remainder; every tag kept when n >= 6)."""
    total = sum(TAG_COUNTS.values())
    raw = {t: c * n / total for t, c in TAG_COUNTS.items()}
    out = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: (-(raw[t] - out[t]), t))[: n - sum(out.values())]:
        out[t] += 1
    return out


def build_geneval(n: int = 60, seed: int = 0) -> list[dict]:
    """``n`` GenEval metadata rows. Within a tag, distinct prompts come first (seeded order); a tag with fewer
    distinct prompts than its share repeats them, as 4 seeded images per prompt would."""
    rows: list[dict] = []
    for tag, k in tag_counts(n).items():
        cands = _candidates(tag)
        order = rng_for("eval", "geneval", seed, tag).permutation(len(cands))
        rows += [cands[int(order[j % len(cands)])] for j in range(k)]
    return rows


def reference_scene(row: dict, rng: np.random.Generator) -> Scene:
    """A scene that satisfies a GenEval metadata row exactly (counts, colours, a clear relation)."""
    objs = [{"shape": c["class"], **({"color": c["color"]} if "color" in c else {})}
            for c in row["include"] for _ in range(c["count"])]
    counts = {c["class"]: c["count"] for c in row["include"]}

    def ok(scene: Scene) -> bool:
        if any(scene.count(shape=s) != n for s, n in counts.items()):
            return False
        for c in row["include"]:
            if "position" in c:
                rel, g = c["position"]
                a = scene.select(shape=c["class"])[0]
                b = scene.select(shape=row["include"][g]["class"])[0]
                if stable_relation(a, b) != rel:
                    return False
        return True

    return sample_until(rng, ok, tries=2000, n=len(objs), objects=objs)
