"""evaluate(model, tasks, RunConfig) -> RunResult: the one entry point the CLI and the trainer share."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import aggregates, capabilities, determinism
from harness import distributed, registry
from harness.artifacts import ArtifactStore
from harness.cache import NullCache, ResponseCache
from harness.errors import HarnessError
from harness.executor import Executor, RunnerPool, TaskRun
from harness.health import Health, headline_problems
from harness.metrics import Metric, normalize
from harness.results import Counts, Manifest, TaskResult, load_run, read_manifest, write_derived
from harness.runner import Runner, UnifiedModel, fingerprint_of
from harness.store import RunStore, ensure_writable, environment, now
from harness.task import Task
from harness.types import MODEL, reusable_encode


@dataclass
class RunConfig:
    output: str | Path = "results"
    data: str | None = None
    limit: int | None = None
    batch_size: int = 8
    seed: int = 1234
    profile: str | None = None          # "P" for every task offering P, or "task=P,task2=Q"
    use_cache: bool = True              # --no-cache turns reading and writing off
    overwrite: bool = False             # recompute everything and replace cached answers
    run_name: str | None = None
    tags: dict = field(default_factory=dict)
    scorer_args: dict = field(default_factory=dict)
    task_args: dict = field(default_factory=dict)      # {task: {option: value}}
    progress: bool = True
    rank: int = 0
    world_size: int = 1
    cli: list[str] | None = None
    threads: int = determinism.DEFAULT_THREADS    # CPU threads of every evaluation process (harness/determinism.py)
    max_failure_rate: float | None = None         # None: stop only when a runner fails everything (health.py)
    repair_cache: bool = False                    # move damaged cache shards aside, keep what reads, recompute


@dataclass
class RunResult:
    run_dir: Path
    results: dict[str, TaskResult]
    manifest: Manifest
    derived: dict = field(default_factory=dict)   # cross-task metrics, e.g. the Consistency Score
    failures: list[str] = field(default_factory=list)   # tasks whose headline could not be computed (run failed)
    skipped: dict = field(default_factory=dict)   # tasks a suite selected that the model cannot serve -> why
    notes: list[str] = field(default_factory=list)      # the same under --limit, where a task may refuse it
    timings: dict = field(default_factory=dict)   # seconds per executor phase (harness.executor.Executor.timings)


def expand_tasks(names: list[str]) -> list[str]:
    """Task and suite names -> task names (suites expanded, duplicates dropped, order kept)."""
    return list(named_or_suite(names))


def named_or_suite(names: list[str]) -> dict[str, bool]:
    """Task and suite names -> {task name: whether it was named itself rather than only through a suite}."""
    out: dict[str, bool] = {}
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name in registry.SUITES:
            for task in registry.SUITES.load(name):
                out.setdefault(task, False)
        elif name in registry.TASKS:
            out[name] = True
        else:
            raise HarnessError(registry.unknown_name_message("task", name, [*registry.TASKS.names(),
                                                                           *registry.SUITES.names()]))
    return out


def profile_for(task_cls, profile: str | None) -> str | None:
    if not profile:
        return None
    if "=" in profile:
        chosen = dict(p.split("=", 1) for p in profile.split(",") if "=" in p)
        return chosen.get(task_cls.name)
    return profile if profile in task_cls.profiles else None


def build_tasks(names: list[str], config: RunConfig) -> list[Task]:
    return plan_tasks(names, config)[0]


def plan_tasks(names: list[str], config: RunConfig, model: Runner | None = None) -> tuple[list[Task], dict]:
    """(the selected tasks `model` can serve, {task a suite selected that it cannot serve: why}); a task named
    directly that it cannot serve is refused (harness/capabilities.py). Skipped tasks are never constructed, so
    their data and options are never looked at."""
    if not names:
        return [], {}
    tasks = []
    chosen = named_or_suite(names)
    selected = list(chosen)
    stray = [t for t in config.task_args if t not in selected]
    if stray:
        raise HarnessError(f"--task-args names task {stray[0]!r}, which is not selected ({', '.join(selected)})")
    classes = [registry.TASKS.load(name) for name in selected]
    skipped: dict = {}
    if model is not None:
        classes, skipped = capabilities.split(model, classes, {n for n, named in chosen.items() if named})
    for cls in classes:
        name = cls.name
        tasks.append(cls(data=config.data, profile=profile_for(cls, config.profile), limit=config.limit,
                         **config.task_args.get(name, {})))
    if config.profile and "=" not in config.profile and not any(t.profile == config.profile for t in tasks):
        raise HarnessError(f"--profile {config.profile}: none of the selected tasks offers it")
    return tasks, skipped


_plain_json = reusable_encode(json.JSONEncoder())        # json.dumps, without a new C encoder per call


def _samples(tr: TaskRun) -> list[dict]:
    lines = []
    for doc_id, reqs, outs, record in zip(tr.doc_ids, tr.requests, tr.outputs, tr.records):
        stages = {}
        for stage, pairs in reqs.items():
            entries = []
            for (req, key), resp in zip(pairs, outs[stage]):
                entry = {**req.describe(), "key": key}
                payload = resp.payload()
                if req.target != MODEL and "values" in payload and len(_plain_json(payload["values"])) > 4096:
                    payload["values"] = "<omitted: large scorer output, kept in the cache>"
                entry["response"] = payload
                entries.append(entry)
            stages[stage] = entries
        lines.append({"doc_id": doc_id, "requests": stages, "record": record})
    return lines


def used_runners(tr: TaskRun, runners: dict[str, Runner]) -> dict[str, dict]:
    used = {req.target for per_doc in tr.requests for pairs in per_doc.values() for (req, _k) in pairs}
    return {t: runners[t].describe() for t in sorted(used) if t in runners and t != MODEL}


def task_results(task: Task, records: list[dict], stats: dict, runners: dict[str, dict], model_info: dict,
                 started: float, runner_seconds: float = 0.0) -> TaskResult:
    metrics = task.aggregate(records)
    details = metrics.pop("details", None) if isinstance(metrics, dict) else None
    return TaskResult(
        task=task.name, version=task.version, headline=task.headline,
        metrics={k: Metric(**m) for k, m in normalize(metrics).items()}, details=details,
        counts=Counts.from_dict(stats), dataset=task.dataset_info, profile=task.profile,
        settings=task.settings(), model=model_info, runners=runners, display_scale=task.display_scale,
        timing={"started": round(started, 3), "finished": now(), "wall_seconds": round(now() - started, 3),
                "runner_seconds": round(runner_seconds, 3)})


def _finish_task(tr: TaskRun, runners: dict[str, Runner], model_info: dict, store: RunStore, rank: int,
                 world: int) -> TaskResult | None:
    """Write a finished task's files; with several processes, rank 0 merges every rank's shard first."""
    stats = tr.stats.to_dict()
    shards = distributed.gather_on_main(store.task_dir(tr.task.name), distributed.Dist(rank, world),
                                        {"records": tr.records, "samples": _samples(tr), "stats": stats,
                                         "runners": used_runners(tr, runners), "seconds": tr.stats.runner_seconds})
    if shards is None:
        return None
    records = distributed.merge_in_doc_order([s["records"] for s in shards], world)
    samples = distributed.merge_in_doc_order([s["samples"] for s in shards], world)
    stats = {k: sum(s["stats"][k] for s in shards) for k in stats}
    described = {k: v for s in shards for k, v in s["runners"].items()}
    seconds = sum(s["seconds"] for s in shards)
    res = task_results(tr.task, records, stats, described, model_info, tr.stats.started, seconds)
    extras = tr.task.extra_files(records)
    if extras:
        res.files = sorted(extras)
    store.write_task(tr.task.name, res, samples, extras)
    return res


def check_config(config: RunConfig) -> None:
    """Values of a RunConfig that no later step would catch before work starts."""
    from harness.filesystems import journal_override
    from harness.options import check_folder_name, check_rate, check_scorer_args, check_tags
    from harness.progress import line_interval

    if config.run_name is not None:
        check_folder_name("--run-name", config.run_name)
    check_tags(config.tags)
    check_scorer_args(config.scorer_args)
    check_rate("--max-failure-rate", config.max_failure_rate)
    if not isinstance(config.threads, int) or config.threads < 1:
        raise HarnessError(f"--threads {config.threads}: give a whole number of threads, at least 1")
    if config.progress:
        line_interval()          # a bad HARNESS_PROGRESS_INTERVAL fails here, not at the first stage
    journal_override()       # and a bad HARNESS_SQLITE_JOURNAL


def evaluate(model, tasks, config: RunConfig | None = None) -> RunResult:
    """Run tasks (names, suites or Task objects) on a model (a --model string or a UnifiedModel)."""
    from harness.models import resolve_model

    config = config or RunConfig()
    check_config(config)
    runner: UnifiedModel = model if isinstance(model, Runner) else resolve_model(model)
    task_objs = [t for t in tasks if isinstance(t, Task)]
    if task_objs:                 # tasks handed over as objects count as named: refused when the model lacks a kind
        capabilities.split(runner, task_objs, {t.name for t in task_objs})
    names = [t for t in tasks if not isinstance(t, Task)]
    built, skipped = plan_tasks(names, config, runner)
    task_objs += built
    if not task_objs:
        raise HarnessError("no tasks selected; pass --tasks (see `python -m harness tasks`)")
    if len({t.name for t in task_objs}) != len(task_objs):
        raise HarnessError("the same task was selected twice")
    restore = determinism.apply(config.threads)      # before the fingerprint: CPU adapters record the count
    try:
        output = Path(config.output)
        ensure_writable(output)
        # the cache is checked before any run folder is touched: a damaged shard must not relabel a finished run
        cache = NullCache() if not config.use_cache else ResponseCache(
            output / "cache", rank=config.rank, world=config.world_size, repair=config.repair_cache)
        try:
            return _run(runner, task_objs, config, output, cache, skipped)
        finally:
            cache.close()
    finally:
        restore()


def _run(runner: UnifiedModel, task_objs: list[Task], config: RunConfig, output: Path, cache,
         skipped: dict | None = None) -> RunResult:
    from harness.models import model_path, model_slug
    from harness.scorers import make_scorer

    fp = runner.fingerprint()
    for t in task_objs:           # load every dataset before any model work: bad data fails fast
        t.docs()
    run_key = fingerprint_of(fp, sorted((t.name, t.version, t.profile, t.dataset_info.sha256, t.options)
                                        for t in task_objs),
                             config.limit, config.seed, config.tags)
    store = RunStore(output, model_slug(runner), config.run_name or f"run-{run_key[:10]}")
    path = model_path(runner)
    model_info = {"spec": getattr(runner, "spec", runner.name), **({"path": path} if path else {}),
                  **runner.describe()}
    cli = config.cli if config.cli is not None else sys.argv
    manifest = Manifest(
        run_id=store.run_id, status="running", started=now(), finished=None, model=model_info,
        tasks=[t.name for t in task_objs],
        config={k: v for k, v in asdict(config).items() if k not in ("cli", "output", "progress", "rank",
                                                                      "repair_cache")},
        data={t.name: t.dataset_info.to_dict() for t in task_objs}, cli=cli, env=environment(),
        world_size=config.world_size, tags=config.tags, skipped=dict(skipped or {}) or None)
    if store.manifest_path.exists():     # a resumed or rescored run: keep its history and its other tasks
        previous = read_manifest(store.manifest_path)
        manifest.started = previous.started or manifest.started
        manifest.tasks = list(dict.fromkeys([*previous.tasks, *manifest.tasks]))
        kept = {t: why for t, why in {**(previous.skipped or {}), **(skipped or {})}.items()
                if t not in manifest.tasks}
        manifest.skipped = kept or None
        manifest.data = {**previous.data, **manifest.data}
        manifest.invocations = previous.invocations
    manifest.invocations.append({"cli": cli, "started": now()})
    dist = distributed.Dist(config.rank, config.world_size)
    distributed.barrier(dist)            # every rank has checked its cache shards before any reads another's
    if config.rank == 0:
        store.write_manifest(manifest)

    pool = RunnerPool(lambda: runner, lambda name: make_scorer(name, config.scorer_args.get(name, {})))
    results: dict[str, TaskResult] = {}

    def on_task_done(tr: TaskRun) -> None:
        res = _finish_task(tr, pool.used(), model_info, store, config.rank, config.world_size)
        if res is not None:
            results[tr.task.name] = res

    executor = Executor(pool, cache, ArtifactStore(output / "artifacts"), batch_size=config.batch_size,
                        seed=config.seed, read_cache=not config.overwrite, rank=config.rank,
                        world=config.world_size, progress=config.progress and config.rank == 0,
                        on_task_done=on_task_done, progress_dir=output / "cache",
                        health=Health(config.max_failure_rate))
    derived: dict = {}
    failures: list[str] = []
    notes: list[str] = []
    ran = False
    try:
        executor.run(task_objs)
        ran = True
        manifest.status = "complete"
        if config.rank == 0:
            # over every finished task of this run folder, so a resumed or extended run combines them too
            derived = aggregates.compute_run(load_run(store.dir)[1])
            if derived:
                write_derived(store.dir, derived)
            failures, notes = headline_problems(results)
            if failures:     # finished, but a headline is missing: never a run that looks complete
                manifest.status = "failed"
                manifest.failure = {"reason": "; ".join(failures), "tasks": sorted(results)}
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        raise
    except BaseException as e:
        manifest.status = "failed"
        manifest.failure = {"reason": " ".join(str(e).split())[:1000] if isinstance(e, HarnessError)
                            else f"{type(e).__name__}: {e}"}
        raise
    finally:
        manifest.determinism = determinism.describe(config.threads)
        reports = [{"hardware": manifest.determinism["hardware"], "batch_limits": dict(executor.calls.limits)}]
        if ran:          # the same on every rank, or a rank would wait at this barrier forever
            reports = distributed.gather_on_main(store.dir, dist, reports[0]) or reports
        manifest.finished = now()
        # per invocation: a run resumed on another machine keeps the answers computed on the first; what ran out
        # of memory, and the batch it then kept to (after a failure or a stop, rank 0's own: ranks cannot meet)
        manifest.invocations[-1].update(status=manifest.status, finished=manifest.finished,
                                        hardware=manifest.determinism["hardware"],
                                        **distributed.combine_invocation(reports))
        if config.rank == 0:
            store.write_manifest(manifest)
    return RunResult(store.dir, results, manifest, derived, failures, notes=notes, skipped=dict(skipped or {}),
                     timings=dict(executor.timings))
