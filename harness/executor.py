"""The staged, batched, cached executor.

Round r runs stage r of every task that has one. The requests of a round are pooled by (target, kind) across all
tasks, deduplicated by content key, looked up in the cache, and the misses handed to the runner in batches; every
finished batch is committed before the next starts (write-through), so an interrupted run resumes where it stopped.
A failing batch is retried one request at a time so one bad input fails alone; failures are recorded, never dropped.
A batch that runs out of memory is halved instead, and the runner's later batches keep to the size that fitted.
A runner is released (its weights unloaded) after the last round whose stages declare they use it (Stage.uses).
"""
from __future__ import annotations

import hashlib
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from tqdm.auto import tqdm

from harness.artifacts import ArtifactStore
from harness.batching import BatchCaller
from harness.capabilities import check_request
from harness.errors import HarnessError
from harness.health import Health
from harness.pipeline import Prefetch, WriteBehind, hash_images
from harness.progress import stage_progress
from harness.runner import Runner
from harness.task import Task
from harness.types import MODEL, Request, Response


def derive_seed(run_seed: int, task: str, doc_id: str, stage: str, sample: int) -> int:
    digest = hashlib.sha256(f"{run_seed}|{task}|{doc_id}|{stage}|{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class TaskStats:
    requests: int = 0
    cached: int = 0
    failed: int = 0
    runner_seconds: float = 0.0
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"requests": self.requests, "cached": self.cached, "failed": self.failed,
                "computed": self.requests - self.cached}


@dataclass
class TaskRun:
    """A task's state while it runs, and what `process` made of it when it finished."""

    task: Task
    docs: list[dict]
    doc_ids: list[str]
    stages: list
    outputs: list[dict] = field(default_factory=list)     # per doc: stage name -> [Response]
    requests: list[dict] = field(default_factory=list)    # per doc: stage name -> [(Request, key)]
    records: list[dict] | None = None
    stats: TaskStats = field(default_factory=TaskStats)


class RunnerPool:
    """Creates runners on first use: the model from a factory, scorers from the scorer registry."""

    def __init__(self, model_factory: Callable[[], Runner] | None, scorer_factory: Callable[[str], Runner]):
        self._model_factory = model_factory
        self._scorer_factory = scorer_factory
        self._runners: dict[str, Runner] = {}

    def get(self, target: str) -> Runner:
        if target not in self._runners:
            if target == MODEL:
                if self._model_factory is None:
                    raise HarnessError("this command has no model, but a task asked the model for output")
                self._runners[target] = self._model_factory()
            elif target.startswith("scorer:"):
                self._runners[target] = self._scorer_factory(target.split(":", 1)[1])
            else:
                raise ValueError(f"unknown request target {target!r}")
        return self._runners[target]

    def used(self) -> dict[str, Runner]:
        return dict(self._runners)

    def release(self, target: str) -> bool:
        """Unload a runner's weights (it stays described, and would load again on a later request); whether
        there was one to release."""
        runner = self._runners.get(target)
        if runner is None:
            return False
        runner.unload()
        return True

    def unload_all(self) -> None:
        for runner in self._runners.values():
            runner.unload()


class Executor:
    def __init__(self, pool: RunnerPool, cache, artifacts: ArtifactStore, *, batch_size: int = 8,
                 seed: int = 1234, read_cache: bool = True, rank: int = 0, world: int = 1,
                 progress: bool = True, on_task_done: Callable[[TaskRun], None] | None = None,
                 progress_dir=None, health: Health | None = None):
        self.pool = pool
        self.cache = cache
        self.artifacts = artifacts
        self.batch_size = max(1, batch_size)
        self.seed = seed
        self.read_cache = read_cache
        self.rank, self.world = rank, world
        self.progress = progress
        self.on_task_done = on_task_done
        self.health = health or Health()
        # with several processes every rank reports its counts here and rank 0's bar shows the global total
        self.progress_dir = progress_dir if world > 1 else None
        self._round = 0
        #: seconds per phase, for profiling (RunResult.timings): content keys, cache lookups, waiting for input
        #: images, the runners, waiting for stores to finish, finishing tasks (records, results files)
        self.timings: dict[str, float] = defaultdict(float)
        self.calls = BatchCaller(f"rank {rank}: " if world > 1 else "")

    # --- public ---------------------------------------------------------------------------------------------
    def run(self, tasks: list[Task]) -> list[TaskRun]:
        runs = []
        for task in tasks:
            docs = task.docs()[self.rank::self.world]
            ids = [task.doc_id(d) for d in docs]
            runs.append(TaskRun(task, docs, ids, task.stages(), [{} for _ in docs], [{} for _ in docs]))
        active = list(runs)
        r = 0
        while active:
            items: list[tuple[TaskRun, int, str, int, Request]] = []
            still = []
            for tr in active:
                if r >= len(tr.stages):
                    self._finish(tr)
                    continue
                still.append(tr)
                items.extend(self._build_stage(tr, tr.stages[r]))
            active = still
            groups: dict[tuple[str, str], list] = defaultdict(list)
            for item in items:
                groups[(item[4].target, item[4].kind)].append(item)
            # the model first: its outputs are what the scorers of later rounds need, and it may then be released
            order = sorted(groups, key=lambda g: (g[0] != MODEL, g))
            later = _needed_after(active, r)
            for n, (target, kind) in enumerate(order):
                self._run_group(target, kind, groups[(target, kind)])
                if later is not None and target not in later and all(t != target for t, _ in order[n + 1:]):
                    self._release(target)
            r += 1
            self._round = r
        return runs

    # --- internals ------------------------------------------------------------------------------------------
    def _release(self, target: str) -> None:
        """Free a runner no later stage needs, so the model and the scorers never have to fit in memory at once."""
        if self.pool.release(target) and self.progress:
            tqdm.write(f"{target} released: no later stage of this run uses it", file=sys.stderr)

    def _build_stage(self, tr: TaskRun, stage) -> list:
        items = []
        name = tr.task.name
        declared = tr.task.model_kinds or ()
        for i, doc in enumerate(tr.docs):
            reqs = stage.build(doc, tr.outputs[i]) or []
            done = []
            for req in reqs:
                seed = req.seed
                if req.target == MODEL:
                    if req.kind not in declared:
                        check_request(tr.task, req.kind)
                    if seed is None:
                        seed = derive_seed(self.seed, name, tr.doc_ids[i], stage.name, req.sample)
                done.append(req.replace(task=name, doc_id=tr.doc_ids[i], stage=stage.name, seed=seed))
            tr.outputs[i][stage.name] = [None] * len(done)
            tr.requests[i][stage.name] = [None] * len(done)
            items.extend((tr, i, stage.name, j, req) for j, req in enumerate(done))
        return items

    def _run_group(self, target: str, kind: str, items: list) -> None:
        runner = self.pool.get(target)
        fp = runner.fingerprint()
        t0 = time.perf_counter()
        hash_images(im for item in items for im in item[4].images)
        keys = [item[4].key(fp) for item in items]
        unique: dict[str, Request] = {}
        for key, item in zip(keys, items):
            unique.setdefault(key, item[4])
        t1 = time.perf_counter()
        found = self.cache.get_many(unique) if self.read_cache else {}
        self.timings["keys"] += t1 - t0
        self.timings["lookup"] += time.perf_counter() - t1
        answers: dict[str, Response] = {}
        for key, payload in found.items():
            resp = Response.from_payload(payload, self.artifacts.get)
            resp.meta["cached"] = True
            answers[key] = resp
        misses = [k for k in unique if k not in answers]
        stages = sorted({f"{it[0].task.name}/{it[2]}" for it in items})
        # runners that read stored outputs say so, rather than look like a model at work
        label = f"{runner.progress_label or target}.{kind}"
        bar = stage_progress(len(unique), len(unique) - len(misses),
                             f"{label} [{', '.join(stages[:3])}{' ...' if len(stages) > 3 else ''}]",
                             {"cached": len(unique) - len(misses), "failed": 0}, self.progress)
        failed = 0
        seconds = 0.0
        size = runner.batch_size or self.batch_size
        report = _GlobalProgress(self.progress_dir, self.rank, self.world, f"{self._round}.{target}.{kind}", bar,
                                 len(unique), len(unique) - len(misses))
        batches = [misses[start:start + size] for start in range(0, len(misses), size)]
        writes = WriteBehind(depth=2)
        prefetch = Prefetch()
        self.health.observe(target, kind, len(unique) - len(misses), 0, None, size, final=False)
        try:
            ready = prefetch.start([unique[k] for k in batches[0]]) if batches else None
            for n, chunk in enumerate(batches):
                batch = [unique[k] for k in chunk]
                t0 = time.perf_counter()
                ready.result()
                self.timings["inputs_wait"] += time.perf_counter() - t0
                if n + 1 < len(batches):
                    ready = prefetch.start([unique[k] for k in batches[n + 1]])
                t0 = time.perf_counter()
                outs = self.calls.call(f"{target}.{kind}", lambda b: runner.run(kind, b), batch,
                                       f"{runner.name}.{kind}")
                seconds += time.perf_counter() - t0
                errors = []
                for key, resp in zip(chunk, outs):
                    resp.meta["cached"] = False
                    if not resp.ok:
                        errors.append(resp.error)
                    answers[key] = resp
                failed += len(errors)
                self.timings["writes_wait"] += writes.submit(
                    lambda chunk=chunk, outs=outs, batch=batch: self._store(target, kind, fp, chunk, outs, batch,
                                                                            writes.parallel),
                    lambda k=len(chunk), f=failed: (bar.update(k), report.update(k),
                                                    bar.set_postfix(cached=len(unique) - len(misses), failed=f,
                                                                    refresh=False)))
                # a stop raised here still stores every queued batch (abandon below): nothing computed is lost
                self.health.observe(target, kind, len(chunk) - len(errors), len(errors),
                                    errors[0] if errors else None, size, final=False)
            self.timings["writes_wait"] += writes.drain()
            self.health.observe(target, kind, 0, 0, None, size, final=True)
        except BaseException:
            writes.abandon()
            raise
        finally:
            writes.close()
            prefetch.close()
            bar.close()
        self.timings["runner"] += seconds
        computed_by_task: dict[int, int] = defaultdict(int)
        for key, (tr, i, stage, j, req) in zip(keys, items):
            resp = answers[key]
            tr.outputs[i][stage][j] = resp
            tr.requests[i][stage][j] = (req, key)
            tr.stats.requests += 1
            if resp.meta.get("cached"):
                tr.stats.cached += 1
            else:
                computed_by_task[id(tr)] += 1
            if not resp.ok:
                tr.stats.failed += 1
        total = sum(computed_by_task.values()) or 1
        for tr in {id(it[0]): it[0] for it in items}.values():
            tr.stats.runner_seconds += seconds * computed_by_task.get(id(tr), 0) / total

    def _store(self, target: str, kind: str, fp: str, chunk: list[str], outs: list[Response],
               batch: list[Request], parallel) -> None:
        """One finished batch, on the write-behind thread: images to the artifact store, then one transaction."""
        done = [resp for resp in outs if resp.ok]
        shas = iter(parallel(self.artifacts.put, [im for resp in done for im in resp.images]))
        commit = []
        for key, resp in zip(chunk, outs):
            if resp.ok:
                # keep file-backed handles, not pixels: thousands of generated images stay off the heap
                resp.images = tuple(self.artifacts.get(next(shas)) for _ in resp.images)
                commit.append((key, target, kind, fp, resp.payload()))
        self.cache.put_many(commit)
        for req in batch:
            for im in req.images:
                im.release()

    def _finish(self, tr: TaskRun) -> None:
        t0 = time.perf_counter()
        tr.records = [tr.task.process(doc, out) for doc, out in zip(tr.docs, tr.outputs)]
        if self.on_task_done is not None:
            self.on_task_done(tr)
        self.timings["finish"] += time.perf_counter() - t0


def _needed_after(runs: list[TaskRun], r: int) -> set[str] | None:
    """The runners the stages after round r of these tasks declare; None when one of them does not declare."""
    needed: set[str] = set()
    for tr in runs:
        for stage in tr.stages[r + 1:]:
            if stage.uses is None:
                return None
            needed.update(stage.uses)
    return needed


class _GlobalProgress:
    """Per-rank progress files; rank 0 shows the sum of every rank's totals (no collectives, no waiting)."""

    def __init__(self, directory, rank: int, world: int, group: str, bar, total: int, done: int):
        self.dir, self.rank, self.world, self.group, self.bar = directory, rank, world, group, bar
        self.total, self.done = total, done
        self.update(0)

    def update(self, n: int) -> None:
        if self.dir is None:
            return
        import json
        from harness.store import write_text

        self.done += n
        write_text(self.dir / f"progress.rank{self.rank}.json",
                   json.dumps({"group": self.group, "total": self.total, "done": self.done}))
        if self.rank != 0:
            return
        total = done = 0
        for r in range(self.world):
            try:
                state = json.loads((self.dir / f"progress.rank{r}.json").read_text())
            except (OSError, ValueError):
                continue
            if state.get("group") == self.group:
                total, done = total + state["total"], done + state["done"]
        if total > self.bar.total:
            self.bar.total = total
        self.bar.n = max(self.bar.n, done)
        self.bar.refresh()
