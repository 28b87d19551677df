"""MMMU in the world (lmms-lab/MMMU validation schema): multiple-choice and open questions under real MMMU
subject names, so per-subject and per-discipline aggregation runs unchanged. Math includes open arithmetic over
counts and multi-image questions (image_1 and image_2 both referenced).

``solve(row)`` re-derives a row's answer from its text and images (parsing the images), as a test oracle.
"""
from __future__ import annotations

import ast

from harness.world.parse import parse_scene
from harness.world.qgen import pick
from harness.world.questions import _compile, extreme_object, referring, resolve, robust, stable_relation
from harness.world.render import render
from harness.world.scene import CELLS, COLOR_NAMES, CORNERS, PLURALS, SHAPES, Scene, rng_for, sample_scene

MMMU_COLUMNS = ("id", "question", "options", "explanation", "image_1", "image_2", "image_3", "image_4", "image_5",
                "image_6", "image_7", "img_type", "answer", "topic_difficulty", "question_type", "subfield")
LETTERS = "ABCDEFGHI"
MIXES = {"green": "blue and yellow", "purple": "red and blue"}
MIX_OPTIONS = ("blue and yellow", "red and blue", "red and yellow", "black and yellow")
DIRECTIONS = {"above": "north", "below": "south", "left of": "west", "right of": "east"}
SINGULAR = {v: k for k, v in PLURALS.items()}
MAP = "Treat <image 1> as a map with north at the top. "


def _count(sc: Scene, shapes: str) -> int:
    return sc.count(shape=SINGULAR[shapes])


def _fall(sc: Scene):
    """The object whose bottom edge is lowest, by a clear margin."""
    bottoms = sorted(((o.y + o.extent / 2, i) for i, o in enumerate(sc.objects)), reverse=True)
    if len(bottoms) < 2 or bottoms[0][0] - bottoms[1][0] < 0.05:
        return None
    return sc.objects[bottoms[0][1]]


def _mode_color(sc: Scene):
    counts = {c: sc.count(color=c) for c in COLOR_NAMES}
    top = sorted(counts.values())[-2:]
    return max(counts, key=counts.get) if top[1] > top[0] else None


def _direction(sc: Scene, s: dict):
    a, b = resolve(sc, s["ref"]), resolve(sc, s["ref2"])
    return None if a is None or b is None or a is b else DIRECTIONS.get(stable_relation(a, b) or "")


def _first_color(sc: Scene):
    o = extreme_object(sc, "leftmost")
    return None if o is None else o.color


# kind -> (subject, subfield, difficulty, template, question_type, solver(scenes, slots) -> value or object)
KINDS = {
    "corners_of": ("Math", "Geometry", "Easy", "How many corners do all the {shapes} in <image 1> have in total?",
                   "open", lambda scs, s: str(_count(scs[0], s["shapes"]) * CORNERS[SINGULAR[s["shapes"]]])),
    "corners_all": ("Math", "Geometry", "Medium", "How many corners do all the shapes in <image 1> have in total?",
                    "open", lambda scs, s: str(sum(CORNERS[o.shape] for o in scs[0].objects))),
    "sum2": ("Math", "Arithmetic", "Easy", "How many objects are there in <image 1> and <image 2> together?",
             "open", lambda scs, s: str(len(scs[0].objects) + len(scs[1].objects))),
    "more2": ("Math", "Arithmetic", "Easy", "Which of the two images, <image 1> or <image 2>, has more {shapes}?",
              "multiple-choice", lambda scs, s: None if _count(scs[0], s["shapes"]) == _count(scs[1], s["shapes"])
              else ("<image 1>" if _count(scs[0], s["shapes"]) > _count(scs[1], s["shapes"]) else "<image 2>")),
    "diff": ("Math", "Arithmetic", "Medium", "How many more {shapes} than {shapes2} are there in <image 1>?",
             "multiple-choice", lambda scs, s: str(_count(scs[0], s["shapes"]) - _count(scs[0], s["shapes2"]))),
    "mode_color": ("Art", "Drawing and Painting", "Easy",
                   "Which color appears most often among the shapes in <image 1>?", "multiple-choice",
                   lambda scs, s: _mode_color(scs[0])),
    "mix": ("Art", "Drawing and Painting", "Medium",
            "Which two paint colors can be mixed to get the color of the {ref} in <image 1>?", "multiple-choice",
            lambda scs, s: MIXES.get(getattr(resolve(scs[0], s["ref"]), "color", None))),
    "place": ("Design", "Graphic Design", "Easy", "Where is the {ref} placed in <image 1>?", "multiple-choice",
              lambda scs, s: getattr(resolve(scs[0], s["ref"]), "cell", None)),
    "fall": ("Physics", "Classical Mechanics", "Medium",
             "If every object in <image 1> fell straight down, which one would reach the bottom edge first?",
             "multiple-choice", lambda scs, s: _fall(scs[0])),
    "north": ("Geography", "Geographic Information Systems", "Easy", MAP + "Which object lies furthest north?",
              "multiple-choice", lambda scs, s: extreme_object(scs[0], "topmost")),
    "direction": ("Geography", "Geographic Information Systems", "Medium",
                  MAP + "In which direction is the {ref} from the {ref2}?", "multiple-choice",
                  lambda scs, s: _direction(scs[0], s)),
    "first_color": ("Computer_Science", "Data Structure and Algorithm", "Medium",
                    "A program lists the objects in <image 1> from left to right. What is the color of the first "
                    "object in the list?", "open", lambda scs, s: _first_color(scs[0])),
    "count_color": ("Computer_Science", "Data Structure and Algorithm", "Easy",
                    "A program counts the {color} objects in <image 1>. What number does it print?", "open",
                    lambda scs, s: str(scs[0].count(color=s["color"]))),
}
_PATTERNS = {k: _compile(v[3]) for k, v in KINDS.items()}
TEXTS = tuple(v[3] for v in KINDS.values()) + MIX_OPTIONS + tuple(DIRECTIONS.values()) + ("['Diagrams'] []",)


def _slots(kind: str, scs: list[Scene], rng) -> dict | None:
    sc = scs[0]
    if kind == "corners_of":
        return {"shapes": PLURALS[pick(rng, [s for s in SHAPES if CORNERS[s] and sc.count(shape=s)] or ["square"])]}
    if kind == "more2":
        return {"shapes": PLURALS[pick(rng, SHAPES)]}
    if kind == "diff":
        a, b = rng.choice(len(SHAPES), 2, replace=False)
        return {"shapes": PLURALS[SHAPES[int(a)]], "shapes2": PLURALS[SHAPES[int(b)]]}
    if kind == "mix":
        objs = [o for o in sc.objects if o.color in MIXES]
        ref = referring(sc, pick(rng, objs), rng, "color") if objs else None
        return {"ref": ref} if ref else None
    if kind == "place":
        o = pick(rng, sc.objects)
        if min(abs(v - t) for v in (o.x, o.y) for t in (1 / 3, 2 / 3)) < 0.04:
            return None
        ref = referring(sc, o, rng)
        return {"ref": ref} if ref else None
    if kind == "direction":
        pairs = [(a, b) for a in sc.objects for b in sc.objects if a is not b and stable_relation(a, b)]
        if not pairs:
            return None
        a, b = pick(rng, pairs)
        ra, rb = referring(sc, a, rng), referring(sc, b, rng)
        return {"ref": ra, "ref2": rb} if ra and rb else None
    if kind == "count_color":
        return {"color": pick(rng, [o.color for o in sc.objects] + list(COLOR_NAMES))}
    return {}


def _options(kind: str, value, scs: list[Scene], rng) -> list[str] | None:
    if kind == "more2":
        return ["<image 1>", "<image 2>"]
    if kind in ("fall", "north"):
        right = referring(scs[0], value, rng)
        others = [referring(scs[0], o, rng) for o in scs[0].objects if o is not value]
        others = [o for o in dict.fromkeys(others) if o and o != right]
        return None if right is None or len(others) < 1 else [right] + others[:3]
    pool = {"diff": [str(v) for v in range(0, 5)], "mode_color": list(COLOR_NAMES), "mix": list(MIX_OPTIONS),
            "place": list(CELLS), "direction": list(DIRECTIONS.values())}[kind]
    others = [p for p in pool if p != value]
    return [value] + [others[int(i)] for i in rng.permutation(len(others))[:3]]


def build_mmmu(n: int = 60, seed: int = 0, size: int = 64) -> list[dict]:
    """``n`` MMMU-schema rows spread over 6 real subjects (ids like "validation_Math_1")."""
    subjects = list(dict.fromkeys(v[0] for v in KINDS.values()))
    rows: list[dict] = []
    per_subject: dict[str, int] = {}
    i = 0
    while len(rows) < n:
        rng = rng_for("eval", "mmmu", seed, i)
        i += 1
        # subjects take turns so every subject gets n/6 questions; kinds within a subject are drawn at random
        kind = pick(rng, [k for k, v in KINDS.items() if v[0] == subjects[len(rows) % len(subjects)]])
        subject, subfield, difficulty, template, qtype, solver = KINDS[kind]
        scs = [sample_scene(rng, int(rng.integers(2, 5))) for _ in range(2 if "<image 2>" in template else 1)]
        slots = _slots(kind, scs, rng)
        # the answer must not hinge on sub-pixel positions (checked on the first image, which carries them)
        value = None if slots is None else robust(lambda sc: solver([sc] + scs[1:], slots), scs[0])
        if value is None or (kind == "diff" and int(value) < 1):
            continue
        question = template.format(**slots)
        if qtype == "open":
            options, answer = [], value
        else:
            opts = _options(kind, value, scs, rng)
            if opts is None:
                continue
            order = [int(j) for j in rng.permutation(len(opts))] if kind != "more2" else [0, 1]
            options = [opts[j] for j in order]
            answer = LETTERS[options.index(value if kind == "more2" else opts[0])]
        per_subject[subject] = per_subject.get(subject, 0) + 1
        images = [render(sc, size) for sc in scs]
        row = {"id": f"validation_{subject}_{per_subject[subject]}", "question": question, "options": str(options),
               "explanation": "", "img_type": "['Diagrams']", "answer": answer, "topic_difficulty": difficulty,
               "question_type": qtype, "subfield": subfield}
        for k in range(1, 8):
            row[f"image_{k}"] = images[k - 1] if k <= len(images) else None
        rows.append({c: row[c] for c in MMMU_COLUMNS})
    return rows


def solve(row: dict) -> str | None:
    """Answer of an MMMU world row computed from its question, options and (parsed) images."""
    for kind, rx in _PATTERNS.items():
        m = rx.fullmatch(row["question"])
        if not m:
            continue
        scs = [parse_scene(row[f"image_{k}"]) for k in (1, 2) if row.get(f"image_{k}") is not None]
        value = KINDS[kind][5](scs, {k: v.lower() for k, v in m.groupdict().items()})
        if value is None or KINDS[kind][4] == "open":
            return value
        options = ast.literal_eval(row["options"])
        if not isinstance(value, str):  # an object: the option that refers to it
            hits = [j for j, o in enumerate(options) if resolve(scs[0], o) is value]
        else:
            hits = [j for j, o in enumerate(options) if o == value]
        return LETTERS[hits[0]] if len(hits) == 1 else None
    return None


