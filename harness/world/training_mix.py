"""The understanding side of the world's training mix: the prompts the benchmark tasks send, over the question
families their evaluation asks about, on one scene at a time.

Prompts are the ones the benchmark tasks send (specs/benchmarks.md): the VQAv2/POPE short-answer suffix,
MMBench (lmms-eval, VLMEvalKit and LLaVA layouts), MMMU (official and lmms-eval option styles), NaturalBench
suffixes and the UnifiedBench (UAE) captioning prompt. Question families are re-weighted towards the VQAv2 types,
and yes/no answers are balanced by construction (the world's samplers draw the intended answer first).

The bundled model is pretrained on this mix (tinyfactory) and post-training on the world (`unigame --data shapes`)
draws from it too, both from the world's "train" seed stream, so post-training continues the distribution the
model was trained on and never sees an evaluation scene.
"""
from __future__ import annotations

import numpy as np

from harness.world import qgen
from harness.world.choices import MC_FAMILIES, sample_choice
from harness.world.render import render
from harness.world.scene import COLOR_NAMES, SHAPES, sample_scene
from harness.world.text import captions

IMAGE_SIZE = 64

VQA_SUFFIX = "Answer the question using a single word or phrase."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
UAE_CAPTION_PROMPT = (
    "You are an expert vision-language model.  \nYour task is: Given an input image, generate a **textual "
    "description** of the image. If there is text in the image, transcribe it inside double quotes \"\".  \n"
    "Now, carefully analyze the input image and output the full description. ")
MMBENCH_HINTS = ("The image shows flat shapes on a plain gray background.",
                 "Every object in the image is a circle, a square or a triangle.")
# VQAv2 question families first: the held-out VQA mix is BASIC only, the rest keeps AdVQA/MMBench coverage
FAMILY_WEIGHTS = {"count": 1.5, "color": 1.2, "shape": 1.5, "size": 1.0, "exist": 1.2, "pope": 2.0, "any": 0.8,
                  "lr": 1.6, "ab": 1.6, "rel_yn": 1.8, "where_rel": 1.6, "where": 0.5, "count_not": 0.3,
                  "count_shape_not": 0.3, "exist_not": 0.3, "count_or": 0.3, "corners": 0.4, "corners_total": 0.3,
                  "count_cornered": 0.3, "rel_color": 0.3, "rel_shape": 0.3, "extreme_color": 0.3,
                  "extreme_shape": 0.3, "same_color": 0.3}
_FAMILIES = list(FAMILY_WEIGHTS)


def family_probabilities(multipliers: dict[str, float] | None = None) -> np.ndarray:
    """Sampling probabilities of the short-answer families: FAMILY_WEIGHTS, each times its multiplier."""
    unknown = set(multipliers or {}) - set(FAMILY_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown question families {sorted(unknown)} (known: {', '.join(_FAMILIES)})")
    w = np.array([FAMILY_WEIGHTS[f] * (multipliers or {}).get(f, 1.0) for f in _FAMILIES])
    return w / w.sum()


_FAMILY_P = family_probabilities()
YES_NO = ("exist", "any", "rel_yn", "exist_not", "same_color")
LETTERS = "ABCDE"


# ------------------------------------------------------------------------------------------------ prompts

def vqa_prompt(question: str, rng) -> str:
    # lmms-eval joins with a newline; TorchUMM's evaluation with a space
    return f"{question}\n{VQA_SUFFIX}" if rng.random() < 0.9 else f"{question} {VQA_SUFFIX}"


def mc_prompt(question: str, options: list[str], rng) -> str:
    """A multiple-choice prompt in one of the benchmarks' layouts (chosen at random)."""
    style = int(rng.integers(5))
    letters = LETTERS[:len(options)]
    hint = MMBENCH_HINTS[int(rng.integers(2))] if rng.random() < 0.3 else None
    if style == 0:     # MMBench, lmms-eval
        opts = "\n".join(f"{l}. {o}" for l, o in zip(letters, options))
        head = f"{hint} {question}" if hint else question
        return f"{head} There are several options:\n{opts}\n\n{MC_SUFFIX}"
    if style == 1:     # MMBench, VLMEvalKit
        opts = "".join(f"{l}. {o}\n" for l, o in zip(letters, options))
        head = f"Hint: {hint}\n" if hint else ""
        return f"{head}Question: {question}\nOptions:\n{opts}Please select the correct answer from the options above. \n"
    if style == 2:     # LLaVA / InternVL
        opts = "\n".join(f"{l}. {o}" for l, o in zip(letters, options))
        head = f"{hint}\n{question}" if hint else question
        return f"{head}\n{opts}\n{MC_SUFFIX}"
    if style == 3:     # MMMU official
        opts = "".join(f"({l}) {o}\n" for l, o in zip(letters, options))
        return f"{question}\n{opts}\n{MC_SUFFIX}"
    opts = "\n".join(f"{l}. {o}" for l, o in zip(letters, options))     # MMMU, lmms-eval
    return f"{question}\n{opts}\n\n{MC_SUFFIX}"


def naturalbench_prompt(question: str, rng, mc: bool) -> str:
    suffix = "Please output the letter corresponding to the correct option." if mc else "Please answer Yes or No."
    return question + (" " if rng.random() < 0.8 else "") + suffix


# ------------------------------------------------------------------------------------------------ examples

def scene_for_questions(rng):
    """A scene for understanding examples: one in five is POPE-like (3-4 objects of distinct classes)."""
    if rng.random() < 0.2:      # POPE-like: 3-4 objects of distinct classes
        return sample_scene(rng, int(rng.integers(3, 5)), distinct=True)
    return sample_scene(rng)


def pope_question(scene, rng) -> dict:
    """POPE's form, "Is there a {color} {shape} in the image?", half present, half absent; absent classes share a
    colour or a shape with a present object half of the time (POPE's popular / adversarial negatives)."""
    present = sorted({(o.color, o.shape) for o in scene.objects})
    if rng.random() < 0.5:
        c, s = present[int(rng.integers(len(present)))]
        answer = "yes"
    else:
        absent = [(c, s) for c in COLOR_NAMES for s in SHAPES if (c, s) not in present]
        near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
        pool = near if near and rng.random() < 0.5 else absent
        c, s = pool[int(rng.integers(len(pool)))]
        answer = "no"
    return {"question": f"Is there a {c} {s} in the image?", "answer": answer}


def understanding_example(rng, n_segments: int = 8, caption_p: float = 0.5, mc_share: float = 0.2,
                          yn_share: float = 0.12, family_p: np.ndarray | None = None,
                          size: int = IMAGE_SIZE) -> dict:
    """One image with several (prompt, answer) segments, all about that image: short-answer questions, then
    multiple choice (`mc_share`) and NaturalBench yes/no (`yn_share`), and a caption with probability
    `caption_p`. `family_p` replaces the default family probabilities (`family_probabilities`); the image is
    rendered at `size` pixels."""
    family_p = _FAMILY_P if family_p is None else family_p
    scene = scene_for_questions(rng)
    segs: list[tuple[str, str]] = []
    for _ in range(n_segments * 3):
        if len(segs) >= n_segments:
            break
        r = rng.random()
        if r < 1 - mc_share - yn_share:
            fam = _FAMILIES[int(rng.choice(len(_FAMILIES), p=family_p))]
            q = pope_question(scene, rng) if fam == "pope" else qgen.sample_question(scene, rng, fam)
            if q:
                segs.append((vqa_prompt(q["question"], rng), q["answer"]))
        elif r < 1 - yn_share:
            n_opts = 4 if rng.random() < 0.75 else int(rng.integers(2, 4))
            mc = sample_choice(scene, rng, MC_FAMILIES[int(rng.integers(len(MC_FAMILIES)))], n_options=n_opts)
            if mc:
                nb = n_opts == 2 and rng.random() < 0.5
                prompt = (naturalbench_prompt(mc["question"] + "\n" + "\n".join(
                    f"{l}. {o}" for l, o in zip(LETTERS, mc["options"])), rng, True) if nb
                    else mc_prompt(mc["question"], mc["options"], rng))
                segs.append((prompt, LETTERS[mc["answer"]]))
        else:
            q = qgen.sample_question(scene, rng, YES_NO[int(rng.integers(len(YES_NO)))])
            if q:
                segs.append((naturalbench_prompt(q["question"], rng, False), q["answer"].capitalize()))
    if rng.random() < caption_p:
        segs.append((UAE_CAPTION_PROMPT, captions(scene)["detailed"]))
    return {"images": [render(scene, size)], "segments": segs, "scene": scene}
