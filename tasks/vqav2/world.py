"""VQAv2 and AdVQA in the world (VQAv2 schema: lmms-lab/VQAv2 columns, 10 annotator answers per question).

Annotators agree mostly but not always, as in the real data: 6-9 give the canonical answer, the rest give
variants that VQA normalisation maps to it ("two" for "2", "Yes", "a circle"), phrasings it does not ("on the
left"), or (at most two) a wrong answer. The canonical answer is always the strict majority, so it is the
``multiple_choice_answer`` and scores 1.0 under VQA accuracy.
"""
from __future__ import annotations

import numpy as np

from harness.world.grammar import NUM_WORDS
from harness.world.qgen import pick, sample_question, sample_questions
from harness.world.questions import BASIC
from harness.world.render import render
from harness.world.scene import CELLS, COLOR_NAMES, SHAPES, rng_for, sample_scene

VQA_COLUMNS = ("question_type", "multiple_choice_answer", "answers", "image_id", "answer_type", "question_id",
               "question", "image")
ADVQA_FAMILIES = ("count_not", "count_shape_not", "exist_not", "count_or", "corners", "corners_total",
                  "count_cornered", "rel_color", "rel_shape", "extreme_color", "extreme_shape", "same_color",
                  "exist", "count")
TEXTS = ("on the left on the right at the top at the bottom round",)


def _variants(answer: str, answer_type: str) -> list[str]:
    if answer_type == "number":
        n = int(answer)
        return [NUM_WORDS[n]] if n <= 10 else []
    if answer_type == "yes/no":
        return [answer.capitalize(), answer + "."]
    if answer in SHAPES:
        return ["a " + answer, answer.capitalize()] + (["round"] if answer == "circle" else [])
    if answer in ("left", "right"):
        return [f"on the {answer}", answer.capitalize()]
    if answer in ("above", "below"):
        return [{"above": "at the top", "below": "at the bottom"}[answer], answer.capitalize()]
    return [answer.capitalize()]


def _wrong(answer: str, answer_type: str, rng) -> str:
    if answer_type == "number":
        n = int(answer)
        return str(n + 1 if n == 0 or rng.random() < 0.5 else n - 1)
    if answer_type == "yes/no":
        return "no" if answer == "yes" else "yes"
    for pool in (COLOR_NAMES, SHAPES, ("left", "right"), ("above", "below"), ("small", "large"), CELLS):
        if answer in pool:
            return pick(rng, [p for p in pool if p != answer])
    return answer


def annotate(answer: str, answer_type: str, rng: np.random.Generator) -> list[dict]:
    """Ten VQA annotator answers for ``answer`` (answer_id 1..10), canonical answer a strict majority."""
    n_main = int(rng.integers(6, 10))
    answers = [(answer, "yes" if rng.random() < 0.85 else "maybe") for _ in range(n_main)]
    variants = _variants(answer, answer_type)
    n_wrong = 0
    while len(answers) < 10:
        if variants and (rng.random() < 0.7 or n_wrong >= 2):
            answers.append((pick(rng, variants), "yes" if rng.random() < 0.8 else "maybe"))
        elif n_wrong < 2:
            n_wrong += 1
            answers.append((_wrong(answer, answer_type, rng), "maybe" if rng.random() < 0.5 else "no"))
        else:
            answers.append((answer, "yes"))
    order = rng.permutation(10)
    return [{"answer": answers[int(i)][0], "answer_confidence": answers[int(i)][1], "answer_id": k + 1}
            for k, i in enumerate(order)]


def _row(q: dict, image_id: int, question_id: int, image, rng) -> dict:
    return {"question_type": q["question_type"], "multiple_choice_answer": q["answer"],
            "answers": annotate(q["answer"], q["answer_type"], rng), "image_id": image_id,
            "answer_type": q["answer_type"], "question_id": question_id, "question": q["question"], "image": image}


def build_vqav2(n: int = 300, seed: int = 0, size: int = 64, per_image: int = 3) -> list[dict]:
    """``n`` open questions (count, colour, shape, size, existence, relative position) over n/per_image
    scenes, in the VQAv2 validation schema."""
    rows: list[dict] = []
    k = 0
    while len(rows) < n:
        rng = rng_for("eval", "vqav2", seed, k)
        scene = sample_scene(rng)
        image = render(scene, size)
        image_id = k + 1
        for j, q in enumerate(sample_questions(scene, rng, min(per_image, n - len(rows)), BASIC)):
            rows.append(_row(q, image_id, image_id * 1000 + j, image, rng))
        k += 1
    return rows


def build_advqa(n: int = 200, seed: int = 0, size: int = 64, per_image: int = 2) -> list[dict]:
    """``n`` adversarial questions in the VQAv2 schema: crowded scenes made of few shapes and colours so every
    object has look-alike distractors, and questions with negation, disjunction, absent objects, corner
    arithmetic, relational and superlative references."""
    rows: list[dict] = []
    k = 0
    while len(rows) < n:
        rng = rng_for("eval", "advqa", seed, k)
        shapes = [SHAPES[int(i)] for i in rng.choice(len(SHAPES), size=2, replace=False)]
        colors = [COLOR_NAMES[int(i)] for i in rng.choice(len(COLOR_NAMES), size=3, replace=False)]
        scene = sample_scene(rng, int(rng.integers(3, 5)), shapes=shapes, colors=colors)
        image = render(scene, size)
        image_id = 500000 + k + 1
        seen: set[str] = set()
        j = 0
        for _ in range(per_image * 10):
            if j >= per_image or len(rows) >= n:
                break
            q = sample_question(scene, rng, pick(rng, ADVQA_FAMILIES))
            if q is None or q["question"] in seen:
                continue
            seen.add(q["question"])
            rows.append(_row(q, image_id, image_id * 1000 + j, image, rng))
            j += 1
        k += 1
    return rows
