"""Training data for the bundled tiny models (both architectures draw the same examples), from the embedded
world's "train" seed stream.

Every example is a pure function of (part, rank, step, index) through `harness.world.scene.rng_for("train", ...)`,
so an interrupted run resumes on exactly the examples it would have seen, and held-out checks (the world's
"eval" stream, used by its benchmark builders) never share a scene with training. The understanding examples
(prompts and question families) are the world's training mix, `harness.world.training_mix`, which post-training on
the world draws from too.
"""
from __future__ import annotations

import numpy as np

from tasks.geneval.world import build_geneval, reference_scene
from harness.world.knowledge import CATEGORIES, make_item, requirement_scene
from harness.world.render import object_masks, render
from harness.world.scene import rng_for, sample_scene
from harness.world.text import captions, geneval_prompts
from harness.world.training_mix import (FAMILY_WEIGHTS, LETTERS, MC_SUFFIX, UAE_CAPTION_PROMPT, VQA_SUFFIX,  # noqa: F401
                                        family_probabilities, scene_for_questions, understanding_example)
from harness.world.training_mix import IMAGE_SIZE as SIZE


def stream(part: str, rank: int, step: int, index: int, seed: int = 0) -> np.random.Generator:
    return rng_for("train", "tiny-janus", part, seed, rank, step, index)


def vision_scene(rng):
    """Scenes for the encoder's auxiliary task (the same mix the understanding examples use)."""
    return scene_for_questions(rng)


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
