"""Text of the world: captions (terse to detailed), generation prompts, tokenisation, vocabulary, and the
stream of training examples (image + captions + prompts + questions) drawn from the train or eval seed stream."""
from __future__ import annotations

import re
from typing import Iterable, Iterator

import numpy as np

from .grammar import NUM_WORDS, group_phrase, list_phrase, number_word, scene_groups
from .questions import BASIC, EXTREMES, HARD, TEMPLATES, referring, stable_relation
from .scene import (CELLS, COLOR_NAMES, PLURALS, RELATIONS, REL_ANSWER, SHAPES, SIZE_NAMES, Scene, rng_for,
                    sample_scene)

# instructions the benchmark tasks append to questions (specs/benchmarks.md), so their words are in vocabulary
INSTRUCTIONS = (
    "Answer the question using a single word or phrase.",
    "Answer with the option's letter from the given choices directly.",
    "Please select the correct answer from the options above.",
    "Hint: Question: Options: There are several options:",
    "Please answer Yes or No.",
    "Please output the letter corresponding to the correct option.",
    "You are an expert vision-language model. Your task is: Given an input image, generate a **textual "
    "description** of the image. If there is text in the image, transcribe it inside double quotes \"\". "
    "Now, carefully analyze the input image and output the full description.",
    "A B C D E (A) (B) (C) (D) A. B. C. D. Yes No",
)
CAPTION_WORDS = "there is are no object objects : . , in the a an empty image photo of and at"
_TOKEN_RX = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens; every punctuation character is its own token ("<image 1>" -> <, image, 1, >)."""
    return _TOKEN_RX.findall(text.lower())


def _where(cell: str) -> str:
    return "in the center" if cell == "center" else f"at the {cell}"


def captions(scene: Scene) -> dict[str, str]:
    """Captions from terse to detailed, keyed "terse", "sizes", "relation" (two objects with a clear relation
    only), "positions" (3x3 cells) and "detailed" (count, positions, pairwise relations)."""
    objs = sorted(scene.objects, key=lambda o: (o.x, o.y))
    if not objs:
        return {"terse": "an empty image", "detailed": "There are no objects."}
    sized = [{"count": 1, "size": o.size, "color": o.color, "shape": o.shape} for o in objs]
    out = {"terse": list_phrase(scene_groups(scene)), "sizes": list_phrase(scene_groups(scene, sizes=True))}
    if len(objs) == 2 and stable_relation(objs[0], objs[1]) not in (None, False):
        out["relation"] = f"{group_phrase(sized[0])} {stable_relation(objs[0], objs[1])} {group_phrase(sized[1])}"
    parts = [f"{group_phrase(g)} {_where(o.cell)}" for g, o in zip(sized, objs)]
    out["positions"] = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    n = len(objs)
    head = f"There {'is' if n == 1 else 'are'} {number_word(n)} {'object' if n == 1 else 'objects'}: "
    rels = []
    rng = np.random.default_rng(0)  # a fixed generator keeps the wording of a scene's description fixed
    for i, a in enumerate(objs):
        for b in objs[i + 1:]:
            rel = stable_relation(a, b)
            ra, rb = referring(scene, a, rng), referring(scene, b, rng)
            if rel and ra and rb:
                rels.append(f"The {ra} is {rel} the {rb}.")
    out["detailed"] = " ".join([head + out["positions"] + "."] + rels)
    return out


def geneval_prompts(scene: Scene) -> list[str]:
    """GenEval-template prompts that describe the whole scene (nothing more, nothing less)."""
    objs = sorted(scene.objects, key=lambda o: (o.x, o.y))
    out = []
    if len(objs) == 1:
        o = objs[0]
        out += [f"a photo of a {o.shape}", f"a photo of a {o.color} {o.shape}"]
    shapes = {o.shape for o in objs}
    if len(objs) > 1 and len(shapes) == 1:
        out.append(f"a photo of {number_word(len(objs))} {PLURALS[objs[0].shape]}")
    if len(objs) == 2 and len(shapes) == 2:
        for a, b in (objs, objs[::-1]):  # both orders, so every relation word appears in training
            out += [f"a photo of a {a.shape} and a {b.shape}",
                    f"a photo of a {a.color} {a.shape} and a {b.color} {b.shape}"]
            rel = stable_relation(a, b)
            if rel:
                out.append(f"a photo of a {a.shape} {rel} a {b.shape}")
    out.append("a photo of " + list_phrase(scene_groups(scene)))
    return list(dict.fromkeys(out))


def _template_words(template: str) -> list[str]:
    return tokenize(re.sub(r"\{[a-z0-9]+\}", " ", template))


def vocabulary(extra_texts: Iterable[str] = ()) -> list[str]:
    """Every token the world can emit in captions, prompts, questions, options, answers and explanations, plus
    the benchmark instructions and `extra_texts` (the literal text of the benchmark builders that use the world,
    tasks.world.TEXTS); sorted, for building a word-level tokenizer."""
    from . import choices, knowledge
    words: set[str] = set()
    texts = list(INSTRUCTIONS) + [CAPTION_WORDS] + list(extra_texts)
    texts += [t[0] for t in TEMPLATES.values()] + [t[0] for t in choices.MC_TEMPLATES.values()]
    texts += [" ".join(f[3:4]) + " " + f[5] for f in knowledge.FACTS]
    texts += [c[0] for c in knowledge.CATEGORIES.values()] + [f[1] for f in knowledge.FACTS]
    texts += ["in the color of as many far away from it , as drawn on a map so the image should show expected :"]
    for t in texts:
        words.update(_template_words(t))
    words.update(COLOR_NAMES, SHAPES, PLURALS.values(), SIZE_NAMES, EXTREMES, NUM_WORDS, REL_ANSWER.values())
    for t in list(RELATIONS) + list(CELLS):
        words.update(tokenize(t))
    words.update(str(i) for i in range(0, 101))
    words.update(("a", "an", "yes", "no", "two", "left", "right", "above", "below"))
    return sorted(words)


def _qa_families() -> tuple[str, ...]:
    return BASIC + HARD + ("where",)


def iter_examples(n: int, seed: int = 0, split: str = "train", size: int = 64, n_questions: int = 6,
                  n_choices: int = 2, knowledge: float = 0.15, shift=None) -> Iterator[dict]:
    """Training (or held-out) examples, one per scene: {"id", "scene", "image", "captions" (terse ->
    detailed), "prompts" (generation prompts that describe the whole image), "qa" ([{question, answer,
    family, ...}]), "mc" ([{question, options, answer}])}. ``split`` picks the seed stream, so "train" and
    "eval" never share a scene; the same (n, seed, split, ...) always yields the same examples."""
    from .choices import MC_FAMILIES, sample_choice
    from .knowledge import CATEGORIES, make_item, requirement_scene
    from .qgen import pick, sample_questions
    from .render import render
    cats = list(CATEGORIES)
    weights = np.array([CATEGORIES[c][2] for c in cats])
    for i in range(n):
        rng = rng_for(split, "examples", seed, i)
        item = None
        if rng.random() < knowledge:
            item = make_item(rng, cats[int(rng.choice(len(cats), p=weights / weights.sum()))])
            scene = requirement_scene(item["requirement"], rng)
        else:
            scene = sample_scene(rng)
        caps = captions(scene)
        prompts = ([item["prompt"]] if item else []) + geneval_prompts(scene)
        mc = [q for q in (sample_choice(scene, rng, pick(rng, MC_FAMILIES)) for _ in range(n_choices)) if q]
        yield {
            "id": f"{split}-{seed}-{i}", "scene": scene.to_dict(),
            "image": render(scene, size, shift, seed=int(rng.integers(2**31))),
            "captions": list(caps.values()), "prompts": prompts,
            "qa": sample_questions(scene, rng, n_questions, _qa_families()), "mc": mc,
        }


def training_examples(n: int, seed: int = 0, split: str = "train", **kw) -> list[dict]:
    """List form of ``iter_examples``."""
    return list(iter_examples(n, seed, split, **kw))
