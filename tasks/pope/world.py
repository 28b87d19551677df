"""POPE in the world (lmms-lab/POPE schema, all three categories in one list).

Objects are (color, shape) classes such as "red circle"; each image lists its distinct classes in a random order.
The questions follow POPE's own construction (AoiDragon/POPE ``utils.pope``): for each of the image's first 3
objects, a "yes" question about it, then a "no" question about a class absent from the image and not asked yet:
* random: a random class among those seen anywhere in the set;
* popular: the first class in the list of classes sorted by how many images contain them;
* adversarial: the first class in the list of classes sorted by how often they co-occur with that positive object.
Sorting is stable with classes in first-seen order, as with POPE's dicts, so the splits can be recomputed from the
images alone; a split is balanced: 3 yes and 3 no per image.
"""
from __future__ import annotations

import numpy as np

from harness.world.render import render
from harness.world.scene import rng_for, sample_scene

POPE_COLUMNS = ("id", "question_id", "question", "answer", "image_source", "image", "category")
CATEGORIES = ("random", "popular", "adversarial")


def question(cls: tuple[str, str]) -> str:
    return f"Is there a {cls[0]} {cls[1]} in the image?"


def statistics(image_objects: list[list]) -> tuple[list, dict]:
    """POPE's frequency-sorted class list and per-class co-occurrence-sorted lists (stable, first-seen order)."""
    freq: dict = {}
    co: dict = {}
    for objs in image_objects:
        for o in objs:
            freq[o] = freq.get(o, 0) + 1
            row = co.setdefault(o, {})
            for other in objs:
                if other != o:
                    row[other] = row.get(other, 0) + 1
    by_freq = [o for o, _ in sorted(freq.items(), key=lambda x: x[1], reverse=True)]
    by_co = {o: [k for k, _ in sorted(row.items(), key=lambda x: x[1], reverse=True)] for o, row in co.items()}
    return by_freq, by_co


def pope_questions(image_objects: list[list], kind: str, rng: np.random.Generator, k: int = 3) -> list[list]:
    """Per image: [(class, "yes"|"no"), ...] alternating, as POPE builds the ``kind`` split."""
    by_freq, by_co = statistics(image_objects)
    pool = list(dict.fromkeys(o for objs in image_objects for o in objs))
    out = []
    for objs in image_objects:
        history: list = []
        qs = []
        for pos in objs[:k]:
            history.append(pos)
            qs.append((pos, "yes"))
            ranked = by_freq if kind == "popular" else by_co.get(pos, []) if kind == "adversarial" else []
            neg = next((c for c in ranked if c not in history and c not in objs), None)
            if neg is None:  # "random", or nothing left in the ranked list: POPE draws at random
                left = [c for c in pool if c not in history and c not in objs]
                neg = left[int(rng.integers(len(left)))]
            history.append(neg)
            qs.append((neg, "no"))
        out.append(qs)
    return out


def build_pope(n_images: int = 30, seed: int = 0, size: int = 64) -> list[dict]:
    """6 questions per image and category (3 yes, 3 no): 18 * n_images rows, balanced yes/no."""
    scenes, image_objects = [], []
    for i in range(n_images):
        rng = rng_for("eval", "pope", seed, i)
        scene = sample_scene(rng, int(rng.integers(3, 5)), distinct=True)
        classes = list(dict.fromkeys((o.color, o.shape) for o in scene.objects))
        scenes.append(scene)
        image_objects.append([classes[int(j)] for j in rng.permutation(len(classes))])
    images = [render(s, size) for s in scenes]
    rows: list[dict] = []
    for cat in CATEGORIES:
        per_image = pope_questions(image_objects, cat, rng_for("eval", "pope", seed, cat))
        qid = 0
        for i, qs in enumerate(per_image):
            for cls, ans in qs:
                qid += 1
                rows.append({"id": str(len(rows)), "question_id": str(qid), "question": question(cls), "answer": ans,
                             "image_source": f"world_{seed}_{i:05d}", "image": images[i], "category": cat})
    return rows
