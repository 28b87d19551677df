"""The LM phases of `tinyfactory.pretrain`, each on two data-parallel ranks (one process, one thread each), for
either architecture (`JanusArch` here, `tinyfactory.emu3_parts.Emu3Arch`: what differs between them).

* "und": understanding on packed prompts, starting from the pretrained encoder (`vision.safetensors`), with the auxiliary
  per-patch head kept on;
* "joint": one model learns understanding and generation together: the understanding loss plus the teacher-forced
  generation loss (janus.md pitfall 3) on VQ codes of freshly rendered images, with CFG dropout that turns the
  prompt into the inference null prompt (pitfall 5);
* "focus": the joint losses again, with the question families the joint model answers from the text rather than
  the image (set-level yes/no, relations, positions) sampled more often. These set-level questions sit on a plateau
  until the model has started to ground them, which happens late in the joint phase; from there, a few hundred
  focused steps move them quickly, while from the understanding checkpoint the same focus leaves them at chance.
  The generation loss stays on because the LM is shared: focused understanding steps alone break generation.

Gradients are averaged over ranks through one flat gloo all-reduce, so the ranks stay identical without wrapping
the model.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from tinyfactory import data
from harness.models.checkpoints import TINY_DIR
from harness.models.janus_hooks import JanusHooks
from tinyfactory.steps import Packer, images_to_tensor, quantise, vq_loss
from tinyfactory.workers import (setup_worker, aux_head_for, build, janus_grid, load_ckpt, lr_at, mark_done,
                                 save_atomic, und_backward, und_chunks, und_loss_with_aux)

class JanusArch:
    """What the LM phases need to know about Janus: its own understanding encoder (pretrained alone in phase 1,
    trained more slowly afterwards) and generation modules apart from the understanding path."""

    name = "janus"
    bundled = TINY_DIR                   # its name and rebuild command: harness.models.checkpoints.BUNDLED
    workdir_prefix = "pretrain-tiny-"
    # phase 1: the parts that train alone, in parallel, before the LM phases (each writes <part>.done)
    first_parts = ("vq", "vision")
    # phase -> (the checkpoint it starts from, whether it trains generation); each phase saves <phase>.safetensors
    phases = {"und": ("vision", False), "joint": ("und", True), "focus": ("joint", True)}

    def prepare_init(self, init: Path, r: dict) -> None:
        """Tokenizer (the world's words), processor and config, no weights."""
        from tinyfactory.build import build_config, build_processor, build_tokenizer

        tok = build_tokenizer(data.vocabulary_words(r["vocab_texts"]))
        config = build_config(tok, **r["model"])
        processor = build_processor(tok, config.vision_config.image_size, config.vision_config.num_image_tokens)
        config.save_pretrained(init)
        processor.save_pretrained(init)

    def export_model(self, workdir: Path, r: dict):
        """(model, processor) with the trained VQ and the last LM phase's weights, and the recipe's generation
        settings."""
        from tinyfactory.build import generation_config

        model, processor = build(workdir)
        model.model.vqmodel.load_state_dict(load_ckpt(workdir / "vq.safetensors")["vq"])
        missing = model.load_state_dict(load_ckpt(workdir / "focus.safetensors")["model"], strict=False).missing_keys
        assert all(k.startswith("model.vqmodel.") or k == "lm_head.weight" for k in missing), missing
        gen = generation_config(processor.tokenizer, guidance_scale=r["guidance"])
        gen.generation_kwargs["image_temperature"] = r["image_temperature"]
        model.generation_config = gen
        return model, processor

    def build(self, workdir: Path):
        return build(workdir)

    def hooks(self, model, processor) -> JanusHooks:
        return JanusHooks(model, processor)

    def grid(self, hooks) -> int:
        return janus_grid(hooks.model)

    def packer(self, processor) -> Packer:
        return Packer(processor)

    def und_loss(self, hooks, r: dict, phase: str):
        return und_loss_with_aux

    def start_from(self, model, processor, workdir: Path, r: dict, phase: str) -> torch.nn.Module:
        """Load the previous phase's weights (and the VQ for the phases with generation); returns the auxiliary
        head."""
        previous, generation = self.phases[phase]
        prev = load_ckpt(workdir / f"{previous}.safetensors")
        model.load_state_dict(prev["model"], strict=False)
        aux_head = aux_head_for(model, processor.tokenizer, r)
        aux_head.load_state_dict(prev["aux"])
        if generation:
            model.model.vqmodel.load_state_dict(load_ckpt(workdir / "vq.safetensors")["vq"])
        if phase == "joint":      # the first phase with generation
            with torch.no_grad():   # code inputs start as the (unit-norm) codebook vectors the VQ decoder reads
                model.model.generation_embeddings.weight.copy_(
                    F.normalize(model.model.vqmodel.quantize.embedding.weight, dim=-1))
        return aux_head

    def encoder_modules(self, model) -> list:
        return [model.model.vision_model, model.model.aligner]

    def generation_modules(self, model) -> list:
        """Modules only generation trains (no gradient before the first phase with generation)."""
        return [model.model.generation_embeddings, model.model.generation_aligner, model.model.generation_head]

    def codes(self, hooks, pixels: torch.Tensor) -> torch.Tensor:
        return quantise(hooks.model.model.vqmodel, pixels)[1]

    def vq_part(self, model, processor):
        """(the VQ module, its loss(pixels, weights) -> (loss, reconstruction, codes, latents))."""
        vq = model.model.vqmodel
        return vq, functools.partial(vq_loss, vq)


def arch_for(name: str):
    if name == "janus":
        return JanusArch()
    if name == "emu3":
        from tinyfactory.emu3_parts import Emu3Arch

        return Emu3Arch()
    raise ValueError(f"unknown architecture {name!r} (janus, emu3)")


def gen_chunks(r: dict, phase: str, rank: int, step: int, hooks, arch, chunk: int = 12) -> list:
    """The step's caption -> codes pairs, sorted by prompt length and cut into chunks (less left padding)."""
    items = []
    for i in range(r[f"{phase}_gen_batch"]):
        rng = data.stream(f"{phase}-gen", rank, step, i, r["seed"])
        prompt, image = data.generation_example(rng)
        items.append((prompt, image, bool(rng.random() < r["cfg_drop"])))
    items.sort(key=lambda t: len(t[0]))
    with torch.no_grad():
        codes = arch.codes(hooks, images_to_tensor([t[1] for t in items]))
    return [hooks.generation_batch([t[0] for t in items[k:k + chunk]], codes[k:k + chunk],
                                   drop_condition=[t[2] for t in items[k:k + chunk]])
            for k in range(0, len(items), chunk)]


def all_reduce_grads(params: list[torch.Tensor], world: int) -> None:
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= world
    for g, f in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(f)


def lm_worker(rank: int, world: int, workdir: str, init_file: str, phase: str, arch_name: str = "janus") -> None:
    workdir = Path(workdir)
    arch = arch_for(arch_name)
    r, log = setup_worker(workdir, f"{phase}-{rank}")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model, processor = arch.build(workdir)
    aux_head = arch.start_from(model, processor, workdir, r, phase)
    model.train()
    model.model.vqmodel.eval()
    model.model.vqmodel.requires_grad_(False)
    generation = arch.phases[phase][1]
    if not generation:     # the generation modules get no gradient before the joint phase
        for m in arch.generation_modules(model):
            m.requires_grad_(False)
    encoder = {id(p) for m in arch.encoder_modules(model) for p in m.parameters()}
    params = [p for p in model.parameters() if p.requires_grad] + list(aux_head.parameters())
    steps, lr, und_size = {"und": (r["und_steps"], r["und_lr"], r["und_batch"]),
                           "joint": (r["joint_steps"], r["joint_lr"], r["joint_und_batch"]),
                           "focus": (r["focus_steps"], r["focus_lr"], r["focus_batch"])}[phase]
    family_p = data.family_probabilities(r["focus_families"]) if phase == "focus" else None
    # the pretrained encoder moves slower than the LM, so the LM's early steps do not wash its features out
    groups = [{"params": [p for p in params if id(p) in encoder], "scale": r.get("encoder_lr_scale", 1.0)},
              {"params": [p for p in params if id(p) not in encoder], "scale": 1.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    ckpt_path, start = workdir / f"{phase}.safetensors", 0
    if (ck := load_ckpt(ckpt_path)) is not None:
        model.load_state_dict(ck["model"], strict=False)
        aux_head.load_state_dict(ck["aux"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
    hooks = arch.hooks(model, processor)
    packer = arch.packer(processor)
    grid = arch.grid(hooks)
    und_loss = arch.und_loss(hooks, r, phase)
    last_save, t0 = time.time(), time.time()

    def state(step):
        keep = {k: v for k, v in model.state_dict().items() if not k.startswith("model.vqmodel.")}
        return {"model": keep, "aux": aux_head.state_dict(), "opt": opt.state_dict(), "step": step}

    for step in range(start, steps):
        for g in opt.param_groups:
            g["lr"] = g["scale"] * lr_at(step, steps, lr, r["warmup"])
        opt.zero_grad(set_to_none=True)
        stats = und_backward(model, aux_head, und_chunks(r, phase, rank, step, und_size, packer, grid,
                                                          family_p=family_p), r["aux_weight"], loss_fn=und_loss)
        if generation:
            chunks = gen_chunks(r, phase, rank, step, hooks, arch)
            stats["gen"] = 0.0
            for c in chunks:
                loss = hooks.generation_loss(c).mean() / len(chunks)
                (r["gen_weight"] * loss).backward()
                stats["gen"] += loss.item()
        all_reduce_grads(params, world)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % r["log_every"] == 0 or step == steps - 1:
            log.write(step=step, **{k: round(v, 4) for k, v in stats.items()}, t=round(time.time() - t0, 1))
        save_now = torch.tensor([float(time.time() - last_save > r["save_every_s"])])
        dist.broadcast(save_now, 0)          # rank 0's clock decides, so both ranks reach the barrier together
        if save_now.item():
            if rank == 0:
                save_atomic(state(step + 1), ckpt_path)
            dist.barrier()
            last_save = time.time()
    if rank == 0:
        save_atomic(state(steps), ckpt_path)
        mark_done(workdir, phase)
    dist.barrier()
    dist.destroy_process_group()
