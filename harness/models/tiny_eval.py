"""Quick held-out check of a Janus folder on the world's "eval" stream (the benchmark builders' data).

Not the benchmark tasks (those live in tasks/ and score with the official rules): a self-contained estimate used
while pretraining and recorded in the shipped metadata. It goes through the `janus` adapter, i.e. the same prompt
format, batching and sampling as an evaluation run.

    python -m harness.models.tiny_eval [folder] [--quick]
"""
from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict

from harness.models.pretrain_data import UAE_CAPTION_PROMPT, VQA_SUFFIX
from harness.types import Image, Request

NUMBERS = {w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                                            "eight", "nine", "ten"))}
CHANCE = {"count": 1 / 5, "color": 1 / 6, "shape": 1 / 3, "size": 1 / 2, "exist": 1 / 2, "any": 1 / 2,
          "lr": 1 / 2, "ab": 1 / 2, "where_rel": 1 / 4, "rel_yn": 1 / 2, "where": 1 / 9}


def normalise(text: str) -> str:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(NUMBERS.get(w, w) for w in words if w not in ("a", "an", "the"))


def vqa_accuracy(pred: str, answers: list[dict]) -> float:
    p = normalise(pred)
    return min(1.0, 0.3 * sum(normalise(a["answer"]) == p for a in answers))


def _ask(model, prompts, images, batch=32, **params):
    reqs = [Request("model", "understand", text=t, images=tuple(Image(pil=im) for im in ims),
                    params={"max_new_tokens": 16, **params}) for t, ims in zip(prompts, images)]
    out = []
    for k in range(0, len(reqs), batch):
        out += [r.text or "" for r in model.understand(reqs[k:k + batch])]
    return out


def _draw(model, prompts, seeds, batch=32, **params):
    reqs = [Request("model", "generate", text=t, seed=s, params={"size": 64, **params})
            for t, s in zip(prompts, seeds)]
    from PIL import Image as PILImage

    blank = PILImage.new("RGB", (64, 64), (225, 225, 225))     # a failed request (empty caption) draws nothing
    out = []
    for k in range(0, len(reqs), batch):
        out += [r.images[0].pil() if r.ok else blank for r in model.generate(reqs[k:k + batch])]
    return out


def eval_vqa(model, n: int = 300) -> dict:
    from harness.world import build
    from harness.world.questions import match_question

    rows = build("vqav2", n=n)
    preds = _ask(model, [f"{r['question']}\n{VQA_SUFFIX}" for r in rows], [[r["image"]] for r in rows])
    per = defaultdict(list)
    for r, p in zip(rows, preds):
        per[match_question(r["question"])[0]].append(vqa_accuracy(p, r["answers"]))
    acc = sum(sum(v) for v in per.values()) / len(rows)
    fam = {f: {"acc": round(sum(v) / len(v), 3), "n": len(v), "x_chance": round(sum(v) / len(v) / CHANCE[f], 2)}
           for f, v in sorted(per.items())}
    return {"accuracy": round(100 * acc, 2), "families": fam,
            "min_x_chance": min(v["x_chance"] for v in fam.values())}


def eval_pope(model, n_images: int = 30) -> dict:
    from harness.world import build

    rows = build("pope", n_images=n_images)
    preds = _ask(model, [f"{r['question'].strip()}\n{VQA_SUFFIX}" for r in rows], [[r["image"]] for r in rows])
    out = {}
    for cat in ("random", "popular", "adversarial"):
        pairs = [(("no" if {"No", "not", "no"} & set(p.split(".")[0].replace(",", "").split(" ")) else "yes"),
                  r["answer"]) for r, p in zip(rows, preds) if r["category"] == cat]
        tp = sum(p == "yes" and a == "yes" for p, a in pairs)
        fp = sum(p == "yes" and a == "no" for p, a in pairs)
        fn = sum(p == "no" and a == "yes" for p, a in pairs)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[cat] = {"f1": round(100 * f1, 2), "acc": round(100 * sum(p == a for p, a in pairs) / len(pairs), 2),
                    "yes_ratio": round(sum(p == "yes" for p, _ in pairs) / len(pairs), 3)}
    out["mean_f1"] = round(sum(v["f1"] for v in out.values()) / 3, 2)
    return out


def _geneval_ok(image, row) -> bool:
    from harness.world.parse import parse

    found = {c: [d for d in ds if d["score"] > 0.3] for c, ds in parse(image).detections.items()}
    for inc in row["include"]:
        dets = found.get(inc["class"], [])
        if len(dets) < inc["count"]:
            return False
        if "color" in inc and any(d["color"] != inc["color"] for d in dets[:inc["count"]]):
            return False
        if "position" in inc:
            rel, g = inc["position"]
            ref = found.get(row["include"][g]["class"], [])
            if not ref:
                return False
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = dets[0]["box"], ref[0]["box"]
            dx, dy = ((ax1 + ax2) - (bx1 + bx2)) / 2 / image.width, ((ay1 + ay2) - (by1 + by2)) / 2 / image.height
            holds = {"left of": dx < -0.1, "right of": dx > 0.1, "above": dy < -0.1, "below": dy > 0.1}
            if not holds[rel]:
                return False
    for exc in row.get("exclude", []):
        if len(found.get(exc["class"], [])) >= exc["count"]:
            return False
    return True


def eval_geneval(model, n: int = 60, images_per_prompt: int = 2, **params) -> dict:
    from harness.world import build

    rows = build("geneval", n=n)
    prompts = [r["prompt"] for r in rows for _ in range(images_per_prompt)]
    seeds = [k for _ in rows for k in range(images_per_prompt)]
    images = _draw(model, prompts, seeds, **params)
    per = defaultdict(list)
    for i, img in enumerate(images):
        row = rows[i // images_per_prompt]
        per[row["tag"]].append(float(_geneval_ok(img, row)))
    tags = {t: round(sum(v) / len(v), 3) for t, v in per.items()}
    return {"overall": round(sum(tags.values()) / len(tags), 3), "tags": tags}


def eval_unified(model, n: int = 50, **params) -> dict:
    from harness.world import build
    from harness.world.judge import scene_similarity

    refs = [im for _, im in build("unified_bench", n=n)]
    caps = _ask(model, [UAE_CAPTION_PROMPT] * n, [[im] for im in refs], max_new_tokens=96)
    regen = _draw(model, caps, [0] * n, **params)
    matched = [scene_similarity(a, b) for a, b in zip(refs, regen)]
    mismatched = [scene_similarity(refs[i], regen[(i + 1) % n]) for i in range(n)]
    m, mm = sum(matched) / n, sum(mismatched) / n
    return {"similarity": round(m, 3), "mismatched": round(mm, 3), "ratio": round(m / max(mm, 1e-6), 2),
            "example_caption": caps[0]}


def eval_vq(model, n: int = 100) -> dict:
    """VQ round trip of held-out renders: exact scene recovered (parser), and scene similarity."""
    import torch

    from harness.models.janus_decode import to_pil
    from harness.world.judge import matches_scene, scene_similarity
    from harness.world.render import render
    from harness.world.scene import rng_for, sample_scene

    hooks = model.training_hooks()
    scenes = [sample_scene(rng_for("eval", "tiny-vq-check", i)) for i in range(n)]
    with torch.no_grad():
        codes, _ = hooks.vq_encode(hooks.images_to_pixels([render(s, 64) for s in scenes]))
        recon = [to_pil(x) for x in hooks.decode(hooks.code_embeddings(codes))]
    return {"exact": round(sum(matches_scene(r, s, sizes=False) for r, s in zip(recon, scenes)) / n, 3),
            "similarity": round(sum(scene_similarity(s, r) for r, s in zip(recon, scenes)) / n, 3)}


def evaluate(folder: str, quick: bool = False, parts=("und", "gen"), **gen_params) -> dict:
    import torch

    from harness.models import resolve_model

    torch.set_num_threads(1)
    model = resolve_model(str(folder), {"batch_size": 32})
    out: dict = {}
    if "und" in parts:
        out["vqav2"] = eval_vqa(model, 40 if quick else 300)
        out["pope"] = eval_pope(model, 6 if quick else 30)
    if "vq" in parts or "gen" in parts:
        out["vq"] = eval_vq(model, 30 if quick else 100)
    if "gen" in parts:
        out["geneval"] = eval_geneval(model, 12 if quick else 60, **gen_params)
        out["unified_bench"] = eval_unified(model, 8 if quick else 50, **gen_params)
    return out


def main(argv=None) -> int:
    from harness.models.checkpoints import TINY_DIR

    ap = argparse.ArgumentParser(prog="python -m harness.models.tiny_eval", description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(TINY_DIR))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="und,gen")
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=None)
    a = ap.parse_args(argv)
    params = {k: v for k, v in (("guidance_scale", a.guidance), ("temperature", a.temperature)) if v is not None}
    print(json.dumps(evaluate(a.folder, a.quick, tuple(a.parts.split(",")), **params), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
