"""One player's optimiser: AdamW, warmup + schedule, gradient averaging across ranks, clipping, NaN guard."""
from __future__ import annotations

import math
import warnings

import torch

from unigame.fsdp import full, is_sharded, load_optimizer_state, optimizer_state_full


def schedule(kind: str, warmup: int, total: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


class Player:
    """Parameters, their optimiser and LR schedule. `update` averages gradients over ranks, clips them, and steps
    unless any rank saw a non-finite loss or gradient, in which case every rank skips it together."""

    def __init__(self, name: str, params: list[torch.nn.Parameter], lr: float, cfg, dist):
        self.name, self.params, self.dist = name, list(params), dist
        self.max_norm = cfg.max_grad_norm
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule(cfg.schedule, cfg.warmup_steps(),
                                                                          cfg.steps))
        self.skipped = 0

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> bool:
        """Backpropagate if the loss is finite on every rank; returns whether it was."""
        finite = not self.dist.any(not bool(torch.isfinite(loss.detach()).all()), loss.device)
        if finite:
            loss.backward()
        return finite

    def update(self, finite: bool = True) -> dict:
        """Average, clip and step; returns {grad_norm, skipped}."""
        if not finite:
            self.zero_grad()
            self.skipped += 1
            return {"grad_norm": float("nan"), "skipped": True}
        grads = []
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if not is_sharded(p):          # FSDP has already reduce-scattered (and averaged) sharded grads
                grads.append(p.grad)
        self.dist.all_reduce_mean_(grads)
        norm = full(torch.nn.utils.clip_grad_norm_(self.params, self.max_norm if self.max_norm > 0 else float("inf")))
        if self.dist.any(not bool(torch.isfinite(norm)), norm.device):
            self.zero_grad()
            self.skipped += 1
            return {"grad_norm": float(norm), "skipped": True}
        self.opt.step()
        self.zero_grad()
        return {"grad_norm": float(norm), "skipped": False}

    def step_schedule(self) -> None:
        """Advance one step. The schedule counts steps, not updates: a C:U = 1:5 perturber, or a skipped step,
        still follows the same calendar (torch warns about stepping before the first update; that is intended)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.sched.step()

    def state_dict(self) -> dict:
        """With whole moments (a collective under --fsdp: every rank calls it)."""
        return {"opt": optimizer_state_full(self.opt), "sched": self.sched.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        load_optimizer_state(self.opt, state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.skipped = state["skipped"]
