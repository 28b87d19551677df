"""Training parts of `tinyfactory.pretrain` and the pieces the LM phases share (one process, one thread each; the
VQ part is `tinyfactory.vq`).

* `vision_worker` (Janus only): the understanding encoder and aligner alone on an auxiliary per-patch task (colour / shape /
  size of the object under each patch, and the patch's row and column); the head is training-only, not exported;
* the LM phases (understanding, then understanding + generation) run on two ranks, see `tinyfactory.lm`; they use
  `und_chunks` / `und_backward` from here (packed prompts plus the same auxiliary head, kept on).

Each part checkpoints atomically every few minutes and resumes from its checkpoint; its examples are a function of
(part, rank, step), so a resumed part sees exactly what an uninterrupted one would have.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.statefile import load_legacy, load_state, save_state
from tinyfactory import data
from tinyfactory.steps import Packer, images_to_tensor, understanding_loss
from harness.world.render import render
from harness.world.scene import COLOR_NAMES, SHAPES, Scene



def aux_classes(grid: int) -> tuple[int, ...]:
    """Per patch: colour, shape, size of the object under it (0 = background), then the patch's row and column,
    which keeps positions linearly readable in the visual tokens (spatial questions need them)."""
    return (len(COLOR_NAMES) + 1, len(SHAPES) + 1, 3, grid, grid)


class AuxHead(torch.nn.Module):
    """Training-only per-patch classifier on the visual tokens. With `tied`, colour, shape and size are scored
    against the LM's own word embeddings ("red", "circle", "large", ...) plus a learned background vector, which
    puts a patch's attributes in the same directions as the question words that ask for them."""

    def __init__(self, model, tokenizer, tied: bool, grid: int):
        super().__init__()
        d = model.config.text_config.hidden_size
        self.sizes = aux_classes(grid)
        self.tied = tied
        if tied:
            words = (COLOR_NAMES, SHAPES, ("small", "large"))
            self.word_ids = [tokenizer.convert_tokens_to_ids(list(w)) for w in words]
            self.background = torch.nn.Parameter(torch.zeros(3, d))
            self.scale = torch.nn.Parameter(torch.tensor(1.0))
            self.pos = torch.nn.Linear(d, 2 * grid)
        else:
            self.linear = torch.nn.Linear(d, sum(self.sizes))
        self._embed = [model.get_input_embeddings()]     # a list: not a submodule, never saved with the head

    def forward(self, visual: torch.Tensor) -> list[torch.Tensor]:
        """Logits per attribute: colour, shape, size, row, column."""
        if not self.tied:
            bounds = np.cumsum((0,) + self.sizes)
            out = self.linear(visual)
            return [out[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
        table = self._embed[0].weight
        logits = [self.scale * visual @ torch.cat([self.background[k:k + 1], table[ids]]).t()
                  for k, ids in enumerate(self.word_ids)]
        pos = self.pos(visual)
        return logits + [pos[..., :self.sizes[3]], pos[..., self.sizes[3]:]]


def janus_grid(model) -> int:
    return model.config.vision_config.image_size // model.config.vision_config.patch_size


def aux_head_for(model, tokenizer, recipe: dict, grid: int | None = None) -> AuxHead:
    return AuxHead(model, tokenizer, recipe.get("aux_tied", False), grid or janus_grid(model))


# ------------------------------------------------------------------------------------------------ plumbing

def build(workdir: Path):
    """(model, processor) from the run's saved tokenizer/config, deterministic initial weights."""
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusProcessor

    processor = JanusProcessor.from_pretrained(workdir / "init")
    config = JanusConfig.from_pretrained(workdir / "init")
    torch.manual_seed(json.loads((workdir / "recipe.json").read_text())["seed"])
    return JanusForConditionalGeneration(config), processor


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def save_atomic(obj, path: Path) -> None:
    """A part's checkpoint as safetensors + JSON (harness/statefile.py): a workdir from elsewhere runs no code."""
    save_state(obj, path)


def load_ckpt(path: Path):
    """The checkpoint at `path` (<part>.safetensors), or the <part>.pt an earlier version wrote (read with
    weights_only=True, which refuses anything but tensors and plain containers); None when there is neither."""
    if path.exists():
        return load_state(path, "pretraining checkpoint")
    legacy = path.with_suffix(".pt")
    return load_legacy(legacy, "pretraining checkpoint") if legacy.exists() else None


class Log:
    def __init__(self, path: Path):
        self.path = path

    def write(self, **row) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def mark_done(workdir: Path, part: str) -> None:
    """The part is finished: `tinyfactory.pretrain` skips it from now on. Its training time is summed from its log (the
    log's clock survives resumes; this invocation's clock does not)."""
    (workdir / f"{part}.done").write_text(json.dumps({"finished": round(time.time(), 1)}))


def setup_worker(workdir: Path, part: str):
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    recipe = json.loads((workdir / "recipe.json").read_text())
    return recipe, Log(workdir / f"{part}.log.jsonl")


# ------------------------------------------------------------------------------------------------ understanding

def patch_labels(scene: Scene, grid: int, size: int = data.SIZE) -> torch.Tensor:
    """[grid*grid, 5]: colour / shape / size class (0 = background) of the object covering most of each patch,
    then the patch's row and column."""
    from harness.world.render import object_masks

    p = size // grid
    best = np.full((grid, grid), 0.2)
    out = np.zeros((grid, grid, 3), dtype=np.int64)
    for o, m in zip(scene.objects, object_masks(scene, size)):
        cover = m.reshape(grid, p, grid, p).mean(axis=(1, 3))
        win = cover > best
        best = np.where(win, cover, best)
        out[win] = (COLOR_NAMES.index(o.color) + 1, SHAPES.index(o.shape) + 1, 1 + (o.size == "large"))
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    out = np.concatenate([out, rows[..., None], cols[..., None]], axis=-1)
    return torch.from_numpy(out.reshape(-1, 5))


def present_pairs(scene: Scene) -> torch.Tensor:
    """[colours * shapes] multi-hot: which (colour, shape) pairs the scene holds (what POPE asks about)."""
    out = torch.zeros(len(COLOR_NAMES), len(SHAPES))
    for o in scene.objects:
        out[COLOR_NAMES.index(o.color), SHAPES.index(o.shape)] = 1.0
    return out.flatten()


def und_chunks(r: dict, part: str, rank: int, step: int, size: int, packer: Packer, grid: int,
               chunk: int = 4, family_p=None) -> list[dict]:
    """The step's examples sorted by length and packed in chunks of `chunk`, so short sequences are not padded
    to the longest of the whole batch."""
    exs = [data.understanding_example(data.stream(part, rank, step, i, r["seed"]), r["segments"], r["caption_p"],
                                      r.get("mc_share", 0.2), r.get("yn_share", 0.12), family_p)
           for i in range(size)]
    exs.sort(key=lambda e: sum(len(q) + len(a) for q, a in e["segments"]))
    out = []
    for k in range(0, len(exs), chunk):
        part_exs = exs[k:k + chunk]
        batch = packer.pack(part_exs)
        batch["aux"] = torch.stack([patch_labels(e["scene"], grid) for e in part_exs])
        batch["present"] = torch.stack([present_pairs(e["scene"]) for e in part_exs])
        batch["weight"] = len(part_exs) / len(exs)
        out.append(batch)
    return out


def und_loss_with_aux(model, aux_head, batch, aux_weight: float):
    from harness.models.janus_decode import image_features

    visual = image_features(model, batch["pixel_values"])
    loss, acc = understanding_loss(model, batch, visual)
    aux = 0.0
    for k, logits in enumerate(aux_head(visual)):
        aux = aux + F.cross_entropy(logits.flatten(0, 1), batch["aux"][..., k].flatten())
    return loss + aux_weight * aux, loss, aux, acc


def und_backward(model, aux_head, chunks: list[dict], aux_weight: float, scale: float = 1.0,
                 loss_fn=None) -> dict:
    """Accumulate the gradients of a step's chunks; returns the step's mean losses. `loss_fn(model, aux_head,
    chunk, aux_weight)` -> (total, answer loss, auxiliary loss, accuracy); Janus' by default."""
    stats = {"loss": 0.0, "aux": 0.0, "acc": 0.0}
    for c in chunks:
        total, loss, aux, acc = (loss_fn or und_loss_with_aux)(model, aux_head, c, aux_weight)
        (scale * c["weight"] * total).backward()
        for k, v in (("loss", loss.item()), ("aux", aux.item()), ("acc", acc)):
            stats[k] += c["weight"] * v
    return stats


def vision_batch(r: dict, step: int, grid: int, processor):
    scenes = [data.vision_scene(data.stream("vision", 0, step, i, r["seed"])) for i in range(r["vision_batch"])]
    pixels = Packer.normalise(processor, images_to_tensor([render(sc, data.SIZE) for sc in scenes]))
    return pixels, torch.stack([patch_labels(sc, grid) for sc in scenes])


def vision_worker(workdir: str) -> None:
    """The understanding encoder and aligner alone, on the per-patch auxiliary task (a from-scratch ViT needs
    thousands of cheap image-only steps before it tells circles, squares and triangles apart)."""
    from harness.models.janus_decode import image_features

    workdir = Path(workdir)
    r, log = setup_worker(workdir, "vision")
    model, processor = build(workdir)
    model.train()
    grid = janus_grid(model)
    aux_head = aux_head_for(model, processor.tokenizer, r)
    parts = [model.model.vision_model, model.model.aligner]
    params = [p for m in parts for p in m.parameters()] + list(aux_head.parameters())
    if aux_head.tied:      # the attribute words' embeddings are the tied head's classes
        params.append(model.get_input_embeddings().weight)
    opt = torch.optim.AdamW(params, lr=r["vision_lr"], betas=(0.9, 0.98), weight_decay=0.01)
    ckpt_path, start = workdir / "vision.safetensors", 0
    if (ck := load_ckpt(ckpt_path)) is not None:
        model.load_state_dict(ck["model"], strict=False)
        aux_head.load_state_dict(ck["aux"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
    last_save, t0 = time.time(), time.time()
    keep = ("model.vision_model.", "model.aligner.", "model.language_model.embed_tokens.")

    def state(step):
        return {"model": {k: v for k, v in model.state_dict().items() if k.startswith(keep)},
                "aux": aux_head.state_dict(), "opt": opt.state_dict(), "step": step}

    for step in range(start, r["vision_steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, r["vision_steps"], r["vision_lr"], r["warmup"])
        pixels, labels = vision_batch(r, step, grid, processor)
        logits = aux_head(image_features(model, pixels))
        losses = [F.cross_entropy(lg.flatten(0, 1), labels[..., k].flatten()) for k, lg in enumerate(logits)]
        opt.zero_grad(set_to_none=True)
        sum(losses).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % r["log_every"] == 0 or step == r["vision_steps"] - 1:
            obj = labels[..., 0] > 0
            accs = [float((lg.argmax(-1)[obj] == labels[..., k][obj]).float().mean()) for k, lg in
                    enumerate(logits[:3])]
            log.write(step=step, loss=round(sum(x.item() for x in losses), 4), color=round(accs[0], 3),
                      shape=round(accs[1], 3), size=round(accs[2], 3), t=round(time.time() - t0, 1))
        if time.time() - last_save > r["save_every_s"]:
            save_atomic(state(step + 1), ckpt_path)
            last_save = time.time()
    save_atomic(state(r["vision_steps"]), ckpt_path)
    mark_done(workdir, "vision")
