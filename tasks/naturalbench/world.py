"""NaturalBench in the world (BaiqiL/NaturalBench schema: one row per group of 2 images x 2 questions).

Each group is a minimal pair: image 1 is image 0 with one thing changed (an object's colour or shape, a mirror
flip that swaps left/right or above/below, or one more object). The questions are chosen so that the answers
follow the fixed pattern all NaturalBench scorers assume: question 0 is Yes/A on image 0 and No/B on image 1,
question 1 is No/B on image 0 and Yes/A on image 1.
"""
from __future__ import annotations

from dataclasses import replace

from harness.world.choices import answer_choice
from harness.world.qgen import pick
from harness.world.questions import answer_question, referring, robust, stable_relation
from harness.world.render import render
from harness.world.scene import BORDER, COLOR_NAMES, GRID, PLURALS, SHAPES, SIZES, Obj, Scene, fits, rng_for, sample_scene

NB_COLUMNS = ("Index", "Image_0", "Image_1", "Question_0", "Image_0_Question_0", "Image_1_Question_0", "Question_1",
              "Image_0_Question_1", "Image_1_Question_1", "Question_Type", "Source")
KINDS = ("color_yn", "shape_yn", "mirror_yn", "count_mc", "color_mc")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _mc(question: str, a: str, b: str) -> str:
    return f"{question}\nA. {a}\nB. {b}"


def _swap_attr(scene: Scene, rng, attr: str):
    """(image 1 scene, old value, new value, object) with one object's colour or shape changed."""
    o = pick(rng, scene.objects)
    if scene.count(shape=o.shape, color=o.color) != 1:
        return None
    pool = COLOR_NAMES if attr == "color" else SHAPES
    new = [v for v in pool if v != getattr(o, attr)
           and scene.count(**{"shape": o.shape, "color": o.color, attr: v}) == 0]
    if not new:
        return None
    value = pick(rng, new)
    objs = tuple(replace(p, **{attr: value}) if p is o else p for p in scene.objects)
    return Scene(objs), getattr(o, attr), value, o


def _group(kind: str, scene: Scene, rng):
    """(scene 1, question 0, question 1, type) or None."""
    if kind in ("color_yn", "shape_yn"):
        hit = _swap_attr(scene, rng, kind.split("_")[0])
        if hit is None:
            return None
        s1, old, new, o = hit
        name = (lambda v: f"{v} {o.shape}") if kind == "color_yn" else (lambda v: f"{o.color} {v}")
        return s1, f"Is there a {name(old)} in the image?", f"Is there a {name(new)} in the image?", "yes_no"
    if kind == "mirror_yn":
        pairs = [(a, b, stable_relation(a, b)) for a in scene.objects for b in scene.objects if a is not b]
        pairs = [p for p in pairs if p[2]]
        if not pairs:
            return None
        a, b, rel = pick(rng, pairs)
        horizontal = rel in ("left of", "right of")
        s1 = Scene(tuple(replace(p, x=(GRID - round(p.x * GRID)) / GRID) if horizontal
                         else replace(p, y=(GRID - round(p.y * GRID)) / GRID) for p in scene.objects))
        ra, rb = referring(scene, a, rng), referring(scene, b, rng)
        if not ra or not rb:
            return None
        return s1, f"Is the {ra} {rel} the {rb}?", f"Is the {ra} {OPPOSITE[rel]} the {rb}?", "yes_no"
    if kind == "count_mc":
        o = pick(rng, scene.objects)
        k = scene.count(shape=o.shape, color=o.color)
        lo = round((BORDER + SIZES["small"] / 2) * GRID)
        hi = GRID - lo
        for _ in range(200):  # one more small object of the same class, wherever it fits
            x, y = (int(v) / GRID for v in rng.integers(lo, hi + 1, size=2))
            new = Obj(o.shape, o.color, "small", x, y)
            if k < 4 and fits(list(scene.objects) + [new]):
                q = f"How many {o.color} {PLURALS[o.shape]} are there?"
                return (Scene(scene.objects + (new,)), _mc(q, str(k), str(k + 1)), _mc(q, str(k + 1), str(k)),
                        "multiple_choice")
        return None
    hit = _swap_attr(scene, rng, "color")  # color_mc
    if hit is None:
        return None
    s1, old, new, o = hit
    ref = referring(scene, o, rng, "color")
    q = f"What color is the {ref}?"
    if ref is None or answer_question(q, s1) != new:
        return None
    return s1, _mc(q, old, new), _mc(q, new, old), "multiple_choice"


def solve(question: str, image, question_type: str) -> str | None:
    """"Yes"/"No" or "A"/"B" for a world NaturalBench question on ``image`` (parsed)."""
    from harness.world.parse import parse_scene
    scene = parse_scene(image)
    if question_type == "yes_no":
        ans = answer_question(question, scene)
        return None if ans is None else ans.capitalize()
    head, *opts = question.split("\n")
    idx = answer_choice(head, [o[3:] for o in opts], scene)
    return None if idx is None else "AB"[idx]


def build_naturalbench(n: int = 60, seed: int = 0, size: int = 64) -> list[dict]:
    """``n`` groups (4 VQA samples each), kinds taking turns, half yes/no and half multiple choice."""
    rows: list[dict] = []
    i = 0
    while len(rows) < n:
        rng = rng_for("eval", "naturalbench", seed, i)
        i += 1
        kind = KINDS[len(rows) % len(KINDS)]
        scene = sample_scene(rng, int(rng.integers(2, 4)))
        g = _group(kind, scene, rng)
        if g is None:
            continue
        s1, q0, q1, qtype = g
        yes, no = ("Yes", "No") if qtype == "yes_no" else ("A", "B")
        img0, img1 = render(scene, size), render(s1, size)
        expect = {(q0, 0): yes, (q0, 1): no, (q1, 0): no, (q1, 1): yes}
        scenes = (scene, s1)
        ok = True
        for (q, j), want in expect.items():
            if qtype == "yes_no":
                got = robust(lambda sc: (answer_question(q, sc) or "").capitalize(), scenes[j])
            else:
                head, *opts = q.split("\n")
                idx = robust(lambda sc: answer_choice(head, [o[3:] for o in opts], sc), scenes[j])
                got = None if idx is None else "AB"[idx]
            ok = ok and got == want
        if not ok:
            continue
        rows.append({"Index": len(rows), "Image_0": img0, "Image_1": img1, "Question_0": q0,
                     "Image_0_Question_0": yes, "Image_1_Question_0": no, "Question_1": q1,
                     "Image_0_Question_1": no, "Image_1_Question_1": yes, "Question_Type": qtype,
                     "Source": "world"})
    return rows
