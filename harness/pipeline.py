"""What the executor overlaps with the runner, so a fast model (a GPU) never waits for the CPU's bookkeeping:

* Prefetch: the next batch's input images are decoded on a background thread while the runner works on this one
  (a real run's inputs are encoded files; decoding them is what a data loader's workers do).
* WriteBehind: a finished batch is stored on a background thread (generated images hashed, PNG-encoded and
  written to the artifact store, then the batch's cache rows committed in one transaction) while the runner works
  on the next. Batches are stored in order, at most `depth` at a time: a crash or `kill -9` loses at most those,
  and a cache row is never committed before its images are on disk. A batch counts as done (progress, resume)
  only once stored.

Both rely on PIL and hashlib releasing the GIL for decoding, encoding and hashing.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from harness.determinism import usable_cpus


def hash_images(images) -> None:
    """Compute (and keep) the content hash of every image not hashed yet: those hashed in an earlier run are
    recalled (harness.hashmemo), the others hashed on all cores. Hashing a dataset's encoded images is most of the
    cost of starting, and of rerunning, a run over real-size images."""
    from harness import hashmemo

    todo = list({id(im): im for im in images if not im.hashed}.values())
    named = {im: im.identity for im in todo}
    known = hashmemo.recall(i for i in named.values() if i)
    for im, identity in named.items():
        if identity in known:
            im.remember_hash(known[identity])
    todo = [im for im in todo if not im.hashed]
    if len(todo) < 8:
        for im in todo:
            im.sha256
    else:
        with ThreadPoolExecutor(usable_cpus(), thread_name_prefix="harness-hash") as pool:
            for _ in pool.map(lambda im: im.sha256, todo, chunksize=16):
                pass
    hashmemo.remember((named[im], im.sha256) for im in todo if named[im])


def decode_inputs(batch) -> None:
    """Decode every input image of a batch of requests (the runner then finds the pixels ready)."""
    for req in batch:
        for im in req.images:
            im.pil()


class Prefetch:
    def __init__(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="harness-prefetch")

    def start(self, batch) -> Future:
        return self._pool.submit(decode_inputs, batch)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class WriteBehind:
    def __init__(self, depth: int = 2, encoders: int | None = None):
        self.depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="harness-store")
        # PNG encoding is the slow part of storing generated images: spread it over the spare cores
        self._encoders = ThreadPoolExecutor(encoders or min(8, usable_cpus()),
                                            thread_name_prefix="harness-encode")
        self._pending: deque[tuple[Future, Callable[[], None]]] = deque()

    def parallel(self, fn: Callable, items: list) -> list:
        """fn over items on the encoder threads (from inside a store), results in order."""
        return list(self._encoders.map(fn, items)) if len(items) > 1 else [fn(x) for x in items]

    def submit(self, store: Callable[[], None], done: Callable[[], None]) -> float:
        """Queue `store` (run on the background thread); `done` runs on this thread once it has finished. Returns
        the seconds spent waiting for older batches to leave room."""
        self._pending.append((self._pool.submit(store), done))
        return self._wait(self.depth)

    def drain(self) -> float:
        """Wait until every queued batch is stored; the seconds waited. An error of a store is raised here."""
        return self._wait(0)

    def _wait(self, keep: int) -> float:
        t0 = time.perf_counter()
        while len(self._pending) > keep:
            future, done = self._pending.popleft()
            future.result()
            done()
        return time.perf_counter() - t0

    def abandon(self) -> None:
        """After an error or an interrupt: let the batches already queued finish storing (finished work is kept),
        without raising their errors over the one being handled."""
        while self._pending:
            future, _ = self._pending.popleft()
            try:
                future.result()
            except BaseException:
                pass

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._encoders.shutdown(wait=True)
