"""Phase 1 of `tinyfactory.pretrain` for either architecture: the VQ autoencoder alone (the architecture's own
quantiser rule, `vq_part`; object pixels up-weighted; dead codes restarted), one process.

Checkpoints atomically every few minutes and resumes from its checkpoint; its examples are a function of the step.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from tinyfactory import data
from tinyfactory.lm import arch_for
from tinyfactory.steps import images_to_tensor, restart_dead_codes
from tinyfactory.workers import load_ckpt, lr_at, mark_done, save_atomic, setup_worker


def vq_worker(workdir: str, arch_name: str = "janus") -> None:
    workdir = Path(workdir)
    r, log = setup_worker(workdir, "vq")
    torch.set_num_threads(r.get("vq_threads", 1))
    model, processor = arch_for(arch_name).build(workdir)
    vq, loss_fn = arch_for(arch_name).vq_part(model, processor)
    vq.train()     # JanusVQVAE.__init__ puts itself in eval mode (janus.md pitfall 2)
    opt = torch.optim.AdamW(vq.parameters(), lr=r["vq_lr"], betas=(0.9, 0.99), weight_decay=0.0)
    ckpt_path, start = workdir / "vq.safetensors", 0
    if (ck := load_ckpt(ckpt_path)) is not None:
        vq.load_state_dict(ck["vq"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
    usage = torch.zeros(vq.quantize.embedding.weight.shape[0])
    last_save, t0 = time.time(), time.time()
    for step in range(start, r["vq_steps"]):
        rng = data.stream("vq", 0, step, 0, r["seed"])
        batch = [data.vq_example(rng) for _ in range(r["vq_batch"])]
        pixels = images_to_tensor([b[0] for b in batch])
        weights = torch.from_numpy(np.stack([b[1] for b in batch]))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, r["vq_steps"], r["vq_lr"], r["warmup"])
        loss, recon, idx, z = loss_fn(pixels, weights)
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
    mark_done(workdir, "vq")
