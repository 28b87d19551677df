"""Training data: VQA triples for the understanding branch, image-caption pairs for the generation side.

Sources (`--data`): `shapes` (the embedded world's TRAIN seed stream: the world's training mix of prompts and
question families, and captions, of N scenes, never the scenes any benchmark is built from), `vqav2` (HuggingFaceM4/VQAv2, train split, through the harness's hub
resolver, which reads the local Hugging Face cache when offline), `hub:REPO[:CONFIG]@SPLIT`, or a local file or
folder in the VQAv2 schema (question, image, and multiple_choice_answer, answers or answer). Captions
(`--captions`): `shapes`, `none`, or a local CC3M-style path (a folder of images with captions.jsonl, or a
parquet/jsonl/csv with image and caption columns).

Batches are a pure function of (seed, step): step t takes positions [t*G, (t+1)*G) of a per-epoch permutation
of the rows, and rank r of W takes the r-th contiguous slice of that global batch. A resumed run therefore sees
exactly the batches it would have seen, and W processes together see the batch one process would.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from harness.errors import DataError, HarnessError

VQAV2_TRAIN = {"repo": "HuggingFaceM4/VQAv2", "config": None, "split": "train", "revision": None}
IMAGE_COLUMNS = ("image", "jpg", "png", "img")
CAPTION_COLUMNS = ("caption", "text", "txt")
WORLD_SEED = 0          # the scenes are fixed; --seed changes initialisation and order, not the data
QUESTIONS_PER_SCENE = 6
CAPTION_P = 0.3         # share of scenes that also carry UnifiedBench's captioning prompt (as in pretraining)


@dataclass
class TrainData:
    vqa: list[dict]
    captions: list[dict]
    info: dict = field(default_factory=dict)

    def vqa_batch(self, step: int, global_size: int, rank: int = 0, world: int = 1, seed: int = 0) -> list[dict]:
        return _slice(self.vqa, step, global_size, rank, world, seed)

    def caption_batch(self, step: int, global_size: int, rank: int = 0, world: int = 1,
                      seed: int = 0) -> list[dict]:
        return _slice(self.captions, step, global_size, rank, world, seed + 7919) if self.captions else []


def _permutation(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _slice(rows: list[dict], step: int, global_size: int, rank: int, world: int, seed: int) -> list[dict]:
    if global_size % world:
        raise HarnessError(f"the global batch ({global_size}) must split evenly over {world} processes")
    per = global_size // world
    n = len(rows)
    perms: dict[int, list[int]] = {}
    out = []
    for pos in range(step * global_size + rank * per, step * global_size + (rank + 1) * per):
        epoch, i = divmod(pos, n)
        if epoch not in perms:
            perms[epoch] = _permutation(n, seed, epoch)
        out.append(rows[perms[epoch][i]])
    return out


# ---------------------------------------------------------------------------------------------------- loading

def load(data: str, captions: str | None, image_size: int, scenes: int = 2000) -> TrainData:
    vqa, caps, info = [], [], {"data": data, "captions": captions}
    if data == "shapes" or captions == "shapes":
        world_vqa, world_caps = shapes_rows(scenes, image_size)
        if data == "shapes":
            vqa = world_vqa
        if captions == "shapes":
            caps = world_caps
        info["shapes"] = {"scenes": scenes, "split": "train", "seed": WORLD_SEED, "size": image_size}
    if data != "shapes":
        vqa = vqa_rows(data)
    if captions not in (None, "none", "shapes"):
        caps = caption_rows(captions)
    for i, row in enumerate(vqa):
        row["row"] = i
    if not vqa:
        raise DataError(f"--data {data}: no usable (image, question, answer) rows")
    info.update(n_vqa=len(vqa), n_captions=len(caps))
    return TrainData(vqa, caps, info)


def shapes_rows(scenes: int, image_size: int) -> tuple[list[dict], list[dict]]:
    """The embedded world's training stream (its "train" seeds, never an evaluation scene).

    VQA rows: the world's training mix (`harness.world.training_mix`, what the bundled model was pretrained on),
    QUESTIONS_PER_SCENE per scene: the prompts the tasks send (VQAv2's short-answer suffix, POPE's questions,
    MMBench / MMMU option layouts, NaturalBench's suffixes, UnifiedBench's captioning prompt) over the question
    families the evaluation asks about, so post-training measures the method, not forgetting of what the data left
    out. "caption" is a whole-scene phrase for the CLIP filter, "scene" the truth for the world's scene check.
    Captions: generation prompts of other scenes (GenEval templates, WISE-style knowledge prompts, captions)."""
    from harness.world.scene import rng_for
    from harness.world.text import captions, geneval_prompts, iter_examples
    from harness.world.training_mix import understanding_example

    vqa, caps = [], []
    for i in range(scenes):
        ex = understanding_example(rng_for("train", "post-training", WORLD_SEED, i), QUESTIONS_PER_SCENE,
                                   caption_p=CAPTION_P, size=image_size)
        scene = ex["scene"]
        phrases = geneval_prompts(scene)
        clip_text = phrases[-1] if phrases else captions(scene)["terse"]
        for j, (prompt, answer) in enumerate(ex["segments"]):
            vqa.append({"id": f"train-mix-{i}-q{j}", "image": ex["images"][0], "question": prompt, "answer": answer,
                        "caption": clip_text, "scene": scene.to_dict()})
    # only the images and generation prompts are used: no questions drawn (they come last in each scene's own
    # stream, so the captions and images are the same without them)
    for ex in iter_examples(scenes, seed=WORLD_SEED, split="train", size=image_size, n_questions=0):
        for j, text in enumerate(dict.fromkeys(ex["prompts"] + ex["captions"][:1])):
            caps.append({"id": f"{ex['id']}-c{j}", "image": ex["image"], "caption": text})
    return vqa, caps


def _hub_spec(data: str) -> dict | None:
    if data == "vqav2":
        return dict(VQAV2_TRAIN)
    if data.startswith("hub:"):
        body = data[4:]
        repo_part, _, split = body.partition("@")
        repo, _, config = repo_part.partition(":")
        if not repo or "/" not in repo:
            raise HarnessError(f"--data {data}: expected hub:ORG/NAME[:CONFIG]@SPLIT")
        return {"repo": repo, "config": config or None, "split": split or "train", "revision": None}
    return None


def vqa_rows(data: str) -> list[dict]:
    from harness.data import resolve_rows

    hub = _hub_spec(data)
    rows, _info = resolve_rows(None if hub else data, hub=hub, world=None, image_columns=("image",),
                               required=("question", "image"))
    out, skipped = [], 0
    for n, row in enumerate(rows):
        answer = training_answer(row)
        if answer is None or row.get("image") is None:
            skipped += 1
            continue
        out.append({"id": str(row.get("question_id", n)), "image": row["image"], "question": str(row["question"]),
                    "answer": answer, "caption": row.get("caption"), "scene": None})
    if not out:
        raise DataError(f"--data {data}: none of its {len(rows)} rows has an image and an answer "
                        "(multiple_choice_answer, answers or answer)")
    return out


def training_answer(row: dict) -> str | None:
    """The answer to train on: VQAv2's multiple_choice_answer, else the most frequent of `answers`."""
    if row.get("multiple_choice_answer"):
        return str(row["multiple_choice_answer"]).strip()
    answers = row.get("answers")
    if isinstance(answers, (list, tuple)) and answers:
        texts = [str(a.get("answer", "")) if isinstance(a, dict) else str(a) for a in answers]
        texts = [t.strip() for t in texts if t.strip()]
        if texts:
            counts = Counter(texts)
            return max(counts, key=lambda t: (counts[t], -texts.index(t)))
    if row.get("answer") not in (None, ""):
        return str(row["answer"]).strip()
    return None


def caption_rows(path: str) -> list[dict]:
    from harness.data import load_rows

    rows = load_rows(path, image_columns=IMAGE_COLUMNS, what="--captions")
    if not rows:
        raise DataError(f"--captions {path}: no rows")
    cols = rows[0].keys()
    image_col = next((c for c in IMAGE_COLUMNS if c in cols), None)
    text_col = next((c for c in CAPTION_COLUMNS if c in cols), None)
    if image_col is None or text_col is None:
        raise DataError(f"--captions {path}: needs an image column ({'/'.join(IMAGE_COLUMNS)}) and a caption "
                        f"column ({'/'.join(CAPTION_COLUMNS)}); found {', '.join(sorted(cols))}")
    return [{"id": str(r.get("id", n)), "image": r[image_col], "caption": str(r[text_col])}
            for n, r in enumerate(rows) if r.get(image_col) is not None and r.get(text_col)]


def pil(image):
    """A row's image as an RGB PIL image (rows hold PIL images or the harness's lazy Images)."""
    return (image.pil() if hasattr(image, "pil") else image).convert("RGB")
