"""Calling a runner on a batch so that one bad request, or one batch too large for memory, never costs the rest.

A batch that runs out of memory is halved until it fits, and later batches of the same group ("model.generate")
keep to the size that fitted; only a request that fits in no batch fails, alone. Any other error is isolated: the
batch is retried one request at a time, so the failing request fails alone and the others still count. The engine's
executor and the lmms-eval wrapper (which raises other errors instead of isolating them) both call runners through
this, so both halve alike.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from tqdm.auto import tqdm

from harness.errors import HarnessError
from harness.runner import free_accelerator_memory, is_out_of_memory
from harness.types import Request, Response

Call = Callable[[list[Request]], Sequence[Response]]


class BatchCaller:
    def __init__(self, where: str = "", isolate: bool = True):
        #: group -> the largest batch that fitted in memory once a larger one ran out of it
        self.limits: dict[str, int] = {}
        self.where = where           # prefixed to the out-of-memory line ("rank 3: ")
        #: False: an error other than running out of memory (or running out on a single request) is raised, for
        #: callers with no guard against a runner that fails every request (the engine stops such a run: health.py)
        self.isolate = isolate

    def call(self, group: str, call: Call, batch: list[Request], name: str | None = None) -> list[Response]:
        """`call` on the batch in pieces no larger than what fitted in memory so far (the whole batch until
        something ran out); the limit is read again for every piece, as a piece may lower it. `name` (default: the
        group) is what a wrong number of responses is blamed on."""
        outs: list[Response] = []
        start = 0
        while start < len(batch):
            size = self.limits.get(group, len(batch))
            outs += self._once(group, call, batch[start:start + size], name or group)
            start += size
        return outs

    def _once(self, group: str, call: Call, batch: list[Request], name: str) -> list[Response]:
        try:
            outs = list(call(batch))
            if len(outs) != len(batch):
                raise RuntimeError(f"{name} returned {len(outs)} responses for {len(batch)} requests")
            return outs
        except (KeyboardInterrupt, HarnessError):
            raise
        except Exception as e:
            out_of_memory = is_out_of_memory(e)
            if not self.isolate and (not out_of_memory or len(batch) == 1):
                raise
            error = f"{type(e).__name__}: {e}"
        # past the except clause the error is gone, and with it the frames of the failed call and the tensors
        # they held: retrying inside it would run the smaller batch with the failed one's memory still taken
        if out_of_memory:
            free_accelerator_memory()
        if len(batch) == 1:
            return [Response.failure(error)]
        if out_of_memory:       # halve the limit (below this batch's size), then run the batch under it
            self._lower(group, (len(batch) + 1) // 2, len(batch))
            return self.call(group, call, batch, name)
        return [self._once(group, call, [req], name)[0] for req in batch]

    def _lower(self, group: str, size: int, tried: int) -> None:
        if self.limits.get(group, tried) <= size:
            return
        self.limits[group] = size
        tqdm.write(f"{self.where}{group}: out of memory with {tried} requests in a batch; going on in batches of "
                   f"at most {size} (start with that batch size to skip the failed attempts)", file=sys.stderr)
