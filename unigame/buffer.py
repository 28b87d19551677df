"""The hard-sample buffer B: the hardest adversarial candidates that passed the semantic filter, ranked by H.

A sample is stored with what the understanding branch needs to answer it again: the adversarial image as the
understanding encoder's input (`kind="pixels"`, decoded candidates) or the perturbed visual tokens themselves
(`kind="visual"`, embedding-space candidates; the encoder and aligner are frozen, so they stay valid), plus the
index of its training row (question and answer). Tensors live on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class HardSample:
    hardness: float
    step: int
    row: int                          # index of the training row (question, answer, clean image)
    kind: str                         # "pixels" or "visual"
    tensor: torch.Tensor              # [3, H, W] understanding input, or [T, d] visual tokens
    meta: dict = field(default_factory=dict)
    seq: int = 0                      # insertion order: ties in H keep the older sample


def threshold(hardness: torch.Tensor, quantile: float) -> float:
    """tau: the `quantile` of H over one mining batch (the whole global batch under data parallelism)."""
    return float(torch.quantile(hardness.detach().float().cpu(), quantile))


def select(hardness: torch.Tensor, passed: torch.Tensor, tau: float, rule: str = "and",
           low_clip: torch.Tensor | None = None) -> torch.Tensor:
    """Which candidates to push. "and" (paper): hard enough and semantically valid. "or" (reference code):
    hard enough, or low CLIP similarity (such candidates are kept, not rejected)."""
    hard = hardness.detach().cpu() >= tau
    if rule == "and":
        return hard & passed.cpu()
    if rule == "or":
        return hard | (low_clip.cpu() if low_clip is not None else torch.zeros_like(hard))
    raise ValueError(f"selection rule must be 'and' or 'or', not {rule!r}")


def rank_share(capacity: int, rank: int, world: int) -> int:
    """One rank's part of the run's buffer capacity (the paper's 50 is for the whole run): the parts sum to it,
    at least 1 each."""
    return max(1, capacity // world + (rank < capacity % world))


class HardBuffer:
    def __init__(self, capacity: int = 50, pop: bool = False):
        if capacity < 1:
            raise ValueError("buffer capacity must be at least 1")
        self.capacity = capacity
        self.pop = pop                    # reference behaviour: sampled items leave the buffer
        self.items: list[HardSample] = []
        self.pushed = self.evicted = self.rejected = 0
        self._seq = 0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, samples: list[HardSample]) -> int:
        """Add samples, keep the `capacity` hardest; returns how many of the new ones stayed."""
        for s in samples:
            s.seq = self._seq
            self._seq += 1
        pool = self.items + list(samples)
        pool.sort(key=lambda s: (-s.hardness, s.seq))
        kept, dropped = pool[:self.capacity], pool[self.capacity:]
        new = {id(s) for s in samples}
        stayed = sum(1 for s in kept if id(s) in new)
        self.pushed += stayed
        self.rejected += len(samples) - stayed
        self.evicted += sum(1 for s in dropped if id(s) not in new)
        self.items = kept
        return stayed

    def sample(self, k: int, generator: torch.Generator) -> list[HardSample]:
        """k samples drawn uniformly without replacement (all of them when fewer are stored)."""
        if not self.items or k <= 0:
            return []
        if k >= len(self.items):
            chosen = list(range(len(self.items)))
        else:
            chosen = sorted(torch.randperm(len(self.items), generator=generator)[:k].tolist())
        out = [self.items[i] for i in chosen]
        if self.pop:
            keep = set(range(len(self.items))) - set(chosen)
            self.items = [self.items[i] for i in sorted(keep)]
        return out

    def stats(self) -> dict:
        out = {"size": len(self.items), "pushed": self.pushed, "evicted": self.evicted}
        if self.items:
            h = torch.tensor([s.hardness for s in self.items])
            q = torch.quantile(h, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()
            out.update({"h_min": q[0], "h_q25": q[1], "h_median": q[2], "h_q75": q[3], "h_max": q[4]})
        return out

    def contents(self) -> list[dict]:
        """What is stored, for logs (no tensors)."""
        return [{"hardness": s.hardness, "step": s.step, "row": s.row, "kind": s.kind, **s.meta}
                for s in self.items]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "pop": self.pop, "pushed": self.pushed, "evicted": self.evicted,
                "rejected": self.rejected, "seq": self._seq,
                "items": [{"hardness": s.hardness, "step": s.step, "row": s.row, "kind": s.kind,
                           "tensor": s.tensor, "meta": s.meta, "seq": s.seq} for s in self.items]}

    def load_state_dict(self, state: dict) -> None:
        """The saved items, within this buffer's own capacity: a run resumed on another number of processes
        keeps each rank's share of the run's capacity (the hardest items stay)."""
        self.pop = state["pop"]
        self.pushed, self.evicted, self.rejected = state["pushed"], state["evicted"], state["rejected"]
        self._seq = state["seq"]
        items = sorted((HardSample(**item) for item in state["items"]), key=lambda s: (-s.hardness, s.seq))
        self.items = items[:self.capacity]
        self.evicted += len(items) - len(self.items)
