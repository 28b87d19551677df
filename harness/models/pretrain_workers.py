"""The three training parts of `pretrain_tiny`, each run in its own process with one thread.

* `vq_worker`: the VQ autoencoder alone (own quantiser, object pixels up-weighted, dead codes restarted);
* `und_worker`: understanding alone (vision encoder, aligner, LM) on packed prompts, with an auxiliary per-patch
  head on the visual tokens (colour / shape / size of the object under each patch) that gives the encoder a dense
  signal from the first step; the head is a training-only module and is not exported;
* `joint_worker`: one rank of the joint phase (understanding + teacher-forced generation on VQ codes, CFG
  dropout), gradients averaged over ranks by hand (gloo all-reduce of one flat buffer).

Each part checkpoints atomically every few minutes and resumes from its checkpoint; its examples are a function of
(part, rank, step), so a resumed part sees exactly what an uninterrupted one would have.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.models import pretrain_data as data
from harness.models.pretrain_steps import (Packer, images_to_tensor, restart_dead_codes, understanding_loss,
                                           vq_loss)
from harness.world.scene import COLOR_NAMES, SHAPES, Scene



def aux_classes(grid: int) -> tuple[int, ...]:
    """Per patch: colour, shape, size of the object under it (0 = background), then the patch's row and column,
    which keeps positions linearly readable in the visual tokens (spatial questions need them)."""
    return (len(COLOR_NAMES) + 1, len(SHAPES) + 1, 3, grid, grid)


def aux_head_for(model) -> torch.nn.Linear:
    grid = model.config.vision_config.image_size // model.config.vision_config.patch_size
    return torch.nn.Linear(model.config.text_config.hidden_size, sum(aux_classes(grid)))


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
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_ckpt(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


class Log:
    def __init__(self, path: Path):
        self.path = path

    def write(self, **row) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _setup(workdir: Path, part: str):
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    recipe = json.loads((workdir / "recipe.json").read_text())
    return recipe, Log(workdir / f"{part}.log.jsonl")


# ------------------------------------------------------------------------------------------------ VQ

def vq_worker(workdir: str) -> None:
    workdir = Path(workdir)
    r, log = _setup(workdir, "vq")
    model, _ = build(workdir)
    vq = model.model.vqmodel
    vq.train()     # JanusVQVAE.__init__ puts itself in eval mode (janus.md pitfall 2)
    opt = torch.optim.AdamW(vq.parameters(), lr=r["vq_lr"], betas=(0.9, 0.99), weight_decay=0.0)
    ckpt_path, start = workdir / "vq.pt", 0
    if (ck := load_ckpt(ckpt_path)) is not None:
        vq.load_state_dict(ck["vq"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
    usage = torch.zeros(vq.config.num_embeddings)
    last_save, t0 = time.time(), time.time()
    for step in range(start, r["vq_steps"]):
        rng = data.stream("vq", 0, step, 0, r["seed"])
        batch = [data.vq_example(rng) for _ in range(r["vq_batch"])]
        pixels = images_to_tensor([b[0] for b in batch])
        weights = torch.from_numpy(np.stack([b[1] for b in batch]))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, r["vq_steps"], r["vq_lr"], r["warmup"])
        loss, recon, idx, z = vq_loss(vq, pixels, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vq.parameters(), 1.0)
        opt.step()
        usage += torch.bincount(idx.flatten(), minlength=usage.numel()).float()
        restarted = 0
        if (step + 1) % r["vq_restart_every"] == 0 and step < 0.8 * r["vq_steps"]:
            restarted = restart_dead_codes(vq, usage, z, rng)
            usage.zero_()
        if step % r["log_every"] == 0 or step == r["vq_steps"] - 1:
            log.write(step=step, loss=loss.item(), mse=(recon - pixels).pow(2).mean().item(),
                      used=int((usage > 0).sum()), restarted=restarted, t=round(time.time() - t0, 1))
        if time.time() - last_save > r["save_every_s"]:
            save_atomic({"vq": vq.state_dict(), "opt": opt.state_dict(), "step": step + 1}, ckpt_path)
            last_save = time.time()
    save_atomic({"vq": vq.state_dict(), "opt": opt.state_dict(), "step": r["vq_steps"]}, ckpt_path)
    (workdir / "vq.done").write_text(json.dumps({"wall_seconds": round(time.time() - t0, 1)}))


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


def und_chunks(r: dict, part: str, rank: int, step: int, size: int, packer: Packer, grid: int,
               chunk: int = 4) -> list[dict]:
    """The step's examples sorted by length and packed in chunks of `chunk`, so short sequences are not padded
    to the longest of the whole batch."""
    exs = [data.understanding_example(data.stream(part, rank, step, i, r["seed"]), r["segments"], r["caption_p"])
           for i in range(size)]
    exs.sort(key=lambda e: sum(len(q) + len(a) for q, a in e["segments"]))
    out = []
    for k in range(0, len(exs), chunk):
        part_exs = exs[k:k + chunk]
        batch = packer.pack(part_exs)
        batch["aux"] = torch.stack([patch_labels(e["scene"], grid) for e in part_exs])
        batch["weight"] = len(part_exs) / len(exs)
        out.append(batch)
    return out


def und_loss_with_aux(model, aux_head, batch, aux_weight: float):
    from harness.models.janus_decode import image_features

    visual = image_features(model, batch["pixel_values"])
    loss, acc = understanding_loss(model, batch, visual)
    logits = aux_head(visual)
    sizes = aux_classes(int(round(visual.shape[1] ** 0.5)))
    aux = 0.0
    for k, (lo, hi) in enumerate(zip((0,) + tuple(np.cumsum(sizes)[:-1]), np.cumsum(sizes))):
        aux = aux + F.cross_entropy(logits[..., lo:hi].flatten(0, 1), batch["aux"][..., k].flatten())
    return loss + aux_weight * aux, loss, aux, acc


def und_backward(model, aux_head, chunks: list[dict], aux_weight: float, scale: float = 1.0) -> dict:
    """Accumulate the gradients of a step's chunks; returns the step's mean losses."""
    stats = {"loss": 0.0, "aux": 0.0, "acc": 0.0}
    for c in chunks:
        total, loss, aux, acc = und_loss_with_aux(model, aux_head, c, aux_weight)
        (scale * c["weight"] * total).backward()
        for k, v in (("loss", loss.item()), ("aux", aux.item()), ("acc", acc)):
            stats[k] += c["weight"] * v
    return stats


def und_worker(workdir: str) -> None:
    workdir = Path(workdir)
    r, log = _setup(workdir, "und")
    model, processor = build(workdir)
    model.train()
    for p in model.model.vqmodel.parameters():
        p.requires_grad_(False)
    grid = model.config.vision_config.image_size // model.config.vision_config.patch_size
    aux_head = aux_head_for(model)
    params = [p for p in model.parameters() if p.requires_grad] + list(aux_head.parameters())
    opt = torch.optim.AdamW(params, lr=r["und_lr"], betas=(0.9, 0.98), weight_decay=0.01)
    ckpt_path, start = workdir / "und.pt", 0
    if (ck := load_ckpt(ckpt_path)) is not None:
        model.load_state_dict(ck["model"], strict=False)
        aux_head.load_state_dict(ck["aux"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
    packer = Packer(processor)
    last_save, t0 = time.time(), time.time()

    def state(step):
        keep = {k: v for k, v in model.state_dict().items() if not k.startswith("model.vqmodel.")}
        return {"model": keep, "aux": aux_head.state_dict(), "opt": opt.state_dict(), "step": step}

    for step in range(start, r["und_steps"]):
        chunks = und_chunks(r, "und", 0, step, r["und_batch"], packer, grid)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, r["und_steps"], r["und_lr"], r["warmup"])
        opt.zero_grad(set_to_none=True)
        stats = und_backward(model, aux_head, chunks, r["aux_weight"])
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % r["log_every"] == 0 or step == r["und_steps"] - 1:
            log.write(step=step, **{k: round(v, 4) for k, v in stats.items()}, t=round(time.time() - t0, 1))
        if time.time() - last_save > r["save_every_s"]:
            save_atomic(state(step + 1), ckpt_path)
            last_save = time.time()
    save_atomic(state(r["und_steps"]), ckpt_path)
    (workdir / "und.done").write_text(json.dumps({"wall_seconds": round(time.time() - t0, 1)}))
