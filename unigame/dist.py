"""Data-parallel training under `accelerate launch` or `torchrun`.

accelerate's PartialState reads either launcher's environment and initialises the process group (NCCL on GPUs,
gloo on CPUs). Gradients are then averaged with one all-reduce per player and step, exactly what DDP does, but
explicitly: the hooks call submodules (vision encoder, VQ decoder, LM) directly, which a DDP wrapper, built
around one forward() call, would not see. Every rank runs the same control flow; decisions that must agree
(skip a step on a non-finite loss, the mining threshold tau) are reduced across ranks before they are taken.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from harness import distributed as harness_distributed


@dataclass(frozen=True)
class Dist(harness_distributed.Dist):
    """The harness's rank/world plus the collectives training needs."""

    @property
    def active(self) -> bool:
        return self.world > 1

    # ----------------------------------------------------------------------------------------- collectives
    def all_reduce_mean_(self, tensors: list[torch.Tensor]) -> None:
        """Average tensors over ranks in place (one flat all-reduce)."""
        if not self.active or not tensors:
            return
        import torch.distributed as td

        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        td.all_reduce(flat)
        flat /= self.world
        i = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[i:i + n].view_as(t).to(t.dtype))
            i += n

    def any(self, flag: bool, device) -> bool:
        if not self.active:
            return flag
        import torch.distributed as td

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item() > 0)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenation over ranks of a 1-D tensor whose length may differ per rank."""
        if not self.active:
            return tensor
        return torch.cat([torch.as_tensor(x) for x in self.gather_objects(tensor.detach().cpu())])

    def gather_objects(self, obj) -> list:
        if not self.active:
            return [obj]
        import torch.distributed as td

        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        if not self.active:
            return obj
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()


def init() -> Dist:
    """Join the launcher's process group (a no-op for one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())     # accelerate only picks gloo when told "cpu"
    return Dist(state.process_index, state.num_processes, state.local_process_index)


def device_for(dist: Dist, requested: str | None) -> str:
    if requested not in (None, "", "auto"):
        return requested
    return harness_distributed.rank_gpu(dist.local_rank) or "cpu"
