"""`--fsdp`: shard the LM's decoder layers (frozen base weights and their LoRA) over the processes (torch FSDP2).

Only the decoder layers are sharded: the hooks call the embeddings, the vision encoder, the VQ model and the
heads directly, outside the LM's forward, so those stay replicated (they are a small part of a 7B model). Each
sharded layer gathers its weights in its own forward and reduce-scatters its LoRA gradients in backward, so the
U player's gradients arrive already averaged; the perturber (replicated) is still all-reduced by the trainer.

LoRA weights and the U optimiser's moments are DTensors: checkpoints gather them into full tensors on every rank
(rank 0 writes), and a resume distributes them again with the same placements.
"""
from __future__ import annotations

import re

import torch

LAYER = re.compile(r"^(.*\.layers\.\d+)\.")


def is_sharded(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor (a collective for DTensors: every rank must call it, in the same order)."""
    return t.full_tensor() if is_sharded(t) else t


def shard_layers(model, lora_targets: list[str], device_type: str, world: int) -> int:
    """fully_shard every decoder layer that holds a LoRA target; returns how many were sharded."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device_type, (world,))
    layers = sorted({m.group(1) for m in map(LAYER.match, lora_targets) if m},
                    key=lambda n: int(n.rsplit(".", 1)[1]))
    for name in layers:
        fully_shard(model.get_submodule(name), mesh=mesh, reshard_after_forward=True)
    return len(layers)


def like(reference: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """`value` (a full tensor) laid out like `reference` (sharded the same way when it is a DTensor)."""
    if not is_sharded(reference):
        return value.to(reference.device, reference.dtype)
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(value.to(reference.device, reference.dtype), reference.device_mesh,
                             reference.placements)


def optimizer_state_full(opt: torch.optim.Optimizer) -> dict:
    """The optimiser state with DTensor moments gathered (collective)."""
    state = opt.state_dict()
    for per_param in state["state"].values():
        for key, value in list(per_param.items()):
            if torch.is_tensor(value):
                per_param[key] = full(value).cpu()
    return state


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """Load a state saved by `optimizer_state_full`, re-sharding each moment like its parameter."""
    params = [p for group in opt.param_groups for p in group["params"]]
    for index, per_param in state["state"].items():
        param = params[int(index)]
        for key, value in list(per_param.items()):
            if torch.is_tensor(value) and value.dim() > 0:
                per_param[key] = like(param, value)
    opt.load_state_dict(state)
