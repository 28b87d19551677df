"""The perturber C: a per-token MLP whose output direction, scaled by a learnable gate, is the perturbation.

delta(z) = eps * normalize(MLP(z)) with eps = eps_max * sigmoid(s), so every token's perturbation has norm eps in
(0, eps_max) by construction; the budget never needs a projection step. Everything runs in float32: 0.02 added to
a bf16 embedding of norm ~1 is mostly rounded away (unigame.md §2).
"""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("unigame")

#: the paper's C is ~2.1M parameters next to a 7B model; it must stay a small fraction of any model
MAX_FRACTION = 0.01
MIN_HIDDEN = 8


def mlp_parameters(dim: int, hidden: int, depth: int) -> int:
    """Parameters of a depth-layer MLP dim -> hidden (-> hidden)* -> dim with biases, plus the gate."""
    return (dim * hidden + hidden) + (depth - 2) * (hidden * hidden + hidden) + (hidden * dim + dim) + 1


class Perturber(nn.Module):
    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, eps_max: float = 0.02,
                 input_norm: bool = True, gate_init: float = 0.0):
        super().__init__()
        if depth < 2:
            raise ValueError("the perturber needs at least 2 layers")
        self.dim, self.hidden, self.depth, self.eps_max = dim, hidden, depth, float(eps_max)
        # visual-token norms differ by orders of magnitude between models (and are ~1e-3 in a random one);
        # a parameter-free LayerNorm makes the MLP see the same scale everywhere without changing the budget
        self.input_norm = nn.LayerNorm(dim, elementwise_affine=False) if input_norm else nn.Identity()
        widths = [dim] + [hidden] * (depth - 1) + [dim]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < depth - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        # orthogonal last layer: initial directions are spread over the token space instead of collapsing
        # onto the few directions a small random matrix favours
        nn.init.orthogonal_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))
        self.float()

    @property
    def eps(self) -> torch.Tensor:
        return self.eps_max * torch.sigmoid(self.gate)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """delta [..., dim] in float32 for tokens z [..., dim] (any dtype)."""
        with torch.autocast(z.device.type, enabled=False):
            direction = F.normalize(self.mlp(self.input_norm(z.float())), dim=-1, eps=1e-12)
            return self.eps * direction

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def fit_hidden(dim: int, depth: int, model_params: int, requested: int | None, default: int = 256,
               max_fraction: float = MAX_FRACTION) -> tuple[int, str]:
    """Hidden width for C and a note saying why. An explicit width is kept (with a warning when over budget);
    the default shrinks, in multiples of 8, to stay under `max_fraction` of the model."""
    budget = max_fraction * model_params
    if requested is not None:
        n = mlp_parameters(dim, requested, depth)
        if n >= budget:
            note = (f"perturber hidden width {requested} gives {n:,} parameters, "
                    f"{100 * n / model_params:.2f}% of the model (over {100 * max_fraction:g}%); kept as requested")
            log.warning(note)
            return requested, note
        return requested, ""
    if mlp_parameters(dim, default, depth) < budget:
        return default, ""
    hidden = default
    while hidden > MIN_HIDDEN and mlp_parameters(dim, hidden, depth) >= budget:
        hidden -= 8
    hidden = max(hidden, MIN_HIDDEN)
    n = mlp_parameters(dim, hidden, depth)
    if n >= budget:
        note = (f"the model has {model_params:,} parameters: even a width-{hidden} perturber ({n:,}) exceeds "
                f"{100 * max_fraction:g}% of it; using width {hidden} anyway")
        log.warning(note)
    else:
        note = (f"perturber hidden width reduced {default} -> {hidden} ({n:,} parameters, "
                f"{100 * n / model_params:.2f}% of the {model_params:,}-parameter model)")
    return hidden, note


def relative_norm(delta: torch.Tensor, z: torch.Tensor) -> float:
    """Mean over tokens of ||delta|| / ||z||: the effective size of the perturbation."""
    ratio = delta.detach().float().norm(dim=-1) / z.detach().float().norm(dim=-1).clamp(min=1e-12)
    value = float(ratio.mean())
    return value if math.isfinite(value) else float("nan")
