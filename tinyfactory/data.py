"""Training data for the bundled tiny Janus, drawn from the embedded world's "train" seed stream.

Every example is a pure function of (part, rank, step, index) through `harness.world.scene.rng_for("train", ...)`,
so an interrupted run resumes on exactly the examples it would have seen, and held-out checks (the world's
"eval" stream, used by its benchmark builders) never share a scene with training.

Prompts are the ones the benchmark tasks send (specs/benchmarks.md): the VQAv2/POPE short-answer suffix,
MMBench (lmms-eval, VLMEvalKit and LLaVA layouts), MMMU (official and lmms-eval option styles), NaturalBench
suffixes and the UnifiedBench (UAE) captioning prompt. Question families are re-weighted towards the VQAv2 types,
and yes/no answers are balanced by construction (the world's samplers draw the intended answer first).
"""
from __future__ import annotations

import numpy as np

from harness.world import qgen
from tasks.geneval.world import build_geneval, reference_scene
from harness.world.choices import MC_FAMILIES, sample_choice
from harness.world.knowledge import CATEGORIES, make_item, requirement_scene
from harness.world.render import object_masks, render
from harness.world.scene import COLOR_NAMES, SHAPES, rng_for, sample_scene
from harness.world.text import captions, geneval_prompts

SIZE = 64
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


def stream(part: str, rank: int, step: int, index: int, seed: int = 0) -> np.random.Generator:
    return rng_for("train", "tiny-janus", part, seed, rank, step, index)


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

def vision_scene(rng):
    """Scenes for the encoder's auxiliary task (the same mix the understanding examples use)."""
    return _scene(rng)


def _scene(rng):
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
                          yn_share: float = 0.12, family_p: np.ndarray | None = None) -> dict:
    """One image with several (prompt, answer) segments, all about that image: short-answer questions, then
    multiple choice (`mc_share`) and NaturalBench yes/no (`yn_share`), and a caption with probability
    `caption_p`. `family_p` replaces the default family probabilities (`family_probabilities`)."""
    family_p = _FAMILY_P if family_p is None else family_p
    scene = _scene(rng)
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
    return {"images": [render(scene, SIZE)], "segments": segs, "scene": scene}


_GENEVAL_ROWS: list[dict] = []


def _geneval_rows() -> list[dict]:
    if not _GENEVAL_ROWS:   # the distinct GenEval template rows (prompt strings, not images)
        seen = {}
        for row in build_geneval(553):
            seen.setdefault(row["prompt"], row)
        _GENEVAL_ROWS.extend(seen[k] for k in sorted(seen))
    return _GENEVAL_ROWS


def generation_example(rng) -> tuple[str, object]:
    """(prompt, image): captions of random scenes, GenEval template prompts on scenes drawn to match them, and
    WISE-style knowledge prompts on scenes satisfying their requirement."""
    r = rng.random()
    if r < 0.25:
        rows = _geneval_rows()
        row = rows[int(rng.integers(len(rows)))]
        return row["prompt"], render(reference_scene(row, rng), SIZE)
    if r < 0.37:
        cats = list(CATEGORIES)
        p = np.array([CATEGORIES[c][2] for c in cats])
        item = make_item(rng, cats[int(rng.choice(len(cats), p=p / p.sum()))])
        return item["prompt"], render(requirement_scene(item["requirement"], rng), SIZE)
    scene = sample_scene(rng)
    caps = captions(scene)
    options = [(caps["detailed"], 3.0), (caps["positions"], 2.0), (caps["terse"], 1.5), (caps["sizes"], 1.0)]
    if "relation" in caps:
        options.append((caps["relation"], 1.0))
    options += [(p, 1.0) for p in geneval_prompts(scene)]
    w = np.array([o[1] for o in options])
    return options[int(rng.choice(len(options), p=w / w.sum()))][0], render(scene, SIZE)


def vq_example(rng, object_weight: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(image HxWx3 uint8, per-pixel loss weight HxW): object pixels weigh `object_weight` (janus.md)."""
    scene = sample_scene(rng)
    img = np.asarray(render(scene, SIZE), dtype=np.uint8)
    mask = np.zeros(img.shape[:2], dtype=bool)
    for m in object_masks(scene, SIZE):
        mask |= m
    return img, 1.0 + (object_weight - 1.0) * mask.astype(np.float32)


def training_texts(n: int = 400) -> list[str]:
    """Prompts and answers of a sample of the stream (to check the tokenizer covers them)."""
    out: list[str] = []
    for i in range(n):
        ex = understanding_example(stream("vocab", 0, 0, i))
        out += [t for seg in ex["segments"] for t in seg]
        out.append(generation_example(stream("vocab-gen", 0, 0, i))[0])
    return out


def vocabulary_words(n_texts: int = 2000) -> set[str]:
    """Tokenizer words: the world's vocabulary as written (lower case) and capitalised (sentence starts, "Yes"),
    option letters, and every word of a large sample of the training prompts and answers."""
    from tinyfactory.build import words_of
    from harness.world.text import vocabulary

    from tasks.world import TEXTS

    base = set(vocabulary(TEXTS))
    words = base | {w.capitalize() for w in base} | set(LETTERS)
    return words | words_of(training_texts(n_texts) + [UAE_CAPTION_PROMPT, MC_SUFFIX, VQA_SUFFIX])
