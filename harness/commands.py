"""The CLI commands' bodies (argument parsing lives in cli.py)."""
from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError


def json_arg(flag: str, text: str | None) -> dict:
    """A JSON-object flag (--model-args, --scorer-args, --task-args); {} when absent."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise HarnessError(f"{flag}: invalid JSON ({e.msg} at column {e.colno}); "
                           f"example: {flag} '{{\"dtype\": \"bfloat16\"}}'") from None
    if not isinstance(value, dict):
        raise HarnessError(f"{flag}: expected a JSON object, got {type(value).__name__}")
    return value


def parse_tags(items: list[str] | None) -> dict:
    """--tag KEY=VALUE (repeatable) -> {KEY: VALUE}."""
    tags = {}
    for item in items or []:
        if "=" not in item:
            raise HarnessError(f"--tag {item}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        tags[k] = v
    return tags


def cmd_run(args, argv) -> int:
    from harness.api import RunConfig, evaluate
    from harness.models import resolve_model
    from harness.report import table

    if args.limit is not None and args.limit < 1:
        raise HarnessError("--limit must be a positive number of documents")
    if args.batch_size < 1:
        raise HarnessError("--batch-size must be at least 1")
    from harness import distributed
    from harness.options import check_device, check_folder_name

    if args.run_name is not None:
        check_folder_name("--run-name", args.run_name)
    dist = distributed.from_env()
    model_args = json_arg("--model-args", args.model_args)
    if args.device:
        check_device(args.device)
        model_args["device"] = args.device
    elif dist.world > 1:
        model_args["device"] = distributed.rank_gpu(dist.local_rank) or "cpu"
    model = resolve_model(args.model, model_args)
    data = args.data if args.data is not None else getattr(model, "default_data", None)
    config = RunConfig(output=args.output, data=data, limit=args.limit, batch_size=args.batch_size,
                       seed=args.seed, profile=args.profile, use_cache=not args.no_cache,
                       overwrite=args.overwrite, run_name=args.run_name, tags=parse_tags(args.tag),
                       scorer_args=json_arg("--scorer-args", args.scorer_args),
                       task_args=_task_args(args.task_args), progress=not args.no_progress,
                       cli=["python", "-m", "harness", *argv], rank=dist.rank, world_size=dist.world,
                       threads=args.threads, max_failure_rate=args.max_failure_rate, repair_cache=args.repair_cache)
    result = evaluate(model, args.tasks.split(","), config)
    if dist.main:
        from harness.report import derived_lines

        print(table(result.results, skipped=result.skipped))
        if result.derived:
            print("\n" + derived_lines(result.derived))
        print(f"\nresults: {result.run_dir}")
        if args.leaderboard or argv == ["run"]:     # the default job (no arguments) ends with its leaderboards too
            from harness.leaderboard import build_all, summary

            print(f"leaderboards: {summary(build_all(args.output))}")
        _headline_verdict(result.failures, result.notes, "the run is marked failed")
    return 0


def _headline_verdict(failures: list[str], notes: list[str], consequence: str) -> None:
    """Notes about partial headlines on stderr; a headline missing on the whole data set fails the command."""
    import sys

    from harness.errors import RunFailed

    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if failures:
        raise RunFailed("; ".join(failures) + f"; {consequence} (see the task's results.json details)")


def _task_args(text: str | None) -> dict:
    value = json_arg("--task-args", text)
    for task, opts in value.items():
        if not isinstance(opts, dict):
            raise HarnessError(f"--task-args: the value for {task!r} must be an object of options")
    return value


def cmd_tasks(args, argv) -> int:
    from harness import registry

    rows = []
    for entry in registry.TASKS.entries():
        cls = registry.TASKS.load(entry.name)
        rows.append((entry.name, _data_forms(cls), ",".join(cls.profiles),
                     ",".join(cls.options_help) or "-", _with_default_data(cls, entry.description or cls.description)))
    _print_rows(("task", "data", "profiles", "options", "description"), rows)
    suites = registry.SUITES.entries()
    if suites:
        print()
        _print_rows(("suite", "tasks", "description"),
                    [(e.name, ",".join(registry.SUITES.load(e.name)), e.description) for e in suites])
    return 0


def _data_forms(cls) -> str:
    """The --data forms a task accepts; its default hub dataset shown pinned (hub@commit) or hub(unpinned)."""
    hub = getattr(cls, "hub", None)
    if not isinstance(hub, dict) or "hub" not in cls.data_sources:
        return ",".join(cls.data_sources)
    pin = f"@{hub['revision'][:7]}" if hub.get("revision") else "(unpinned)"
    return ",".join(f"hub{pin}" if s == "hub" else s for s in cls.data_sources)


def _with_default_data(cls, description: str) -> str:
    """The description, plus which snapshot the default hub dataset is pinned to or why it cannot be."""
    hub = getattr(cls, "hub", None)
    if not isinstance(hub, dict) or "hub" not in cls.data_sources:
        return description
    if hub.get("revision"):
        return f"{description} [default {hub['repo']}@{hub['revision']}]"
    return f"{description} [default {hub['repo']} not pinned: {hub.get('unpinned', 'no commit known')}; " \
           "results record the commit read]"


def cmd_models(args, argv) -> int:
    from harness import registry
    from harness.models import DEFAULT_MODEL

    _print_rows(("model", "origin", "description"),
                [(e.name + (" (default)" if e.name == DEFAULT_MODEL else ""), e.origin, e.description)
                 for e in registry.MODELS.entries()])
    print("\n--model also accepts a trainer checkpoint folder, a local Hugging Face folder or a hub id.")
    return 0


def cmd_scorers(args, argv) -> int:
    from harness import registry

    _print_rows(("scorer", "origin", "description"),
                [(e.name, e.origin, e.description) for e in registry.SCORERS.entries()])
    return 0


def _print_rows(header, rows) -> None:
    rows = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        print("  ".join([c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]).rstrip())


def cmd_show(args, argv) -> int:
    from harness.report import derived_lines, history_lines, table
    from harness.results import load_run, read_derived

    manifest, results = load_run(args.run_dir)
    print(f"run {manifest.run_id}  model {manifest.model.get('spec')}  status {manifest.status}")
    missing = [t for t in manifest.tasks if t not in results]
    print(table(results, full=args.all, skipped=manifest.skipped))
    derived = read_derived(args.run_dir)
    if derived:
        print("\n" + derived_lines(derived))
    history = history_lines(manifest.invocations)
    if history:
        print("\n" + history)
    if missing:
        print(f"\nnot finished: {', '.join(missing)}")
    return 0


def cmd_score(args, argv) -> int:
    from harness import registry
    from harness.results import write_task_result
    from harness.score_mode import model_for, score

    options = _task_args(args.task_args)
    stray = [t for t in options if t != args.task]
    if stray:
        raise HarnessError(f"--task-args names task {stray[0]!r}; score runs only {args.task!r}")
    task = registry.TASKS.load(args.task)(data=args.data, profile=args.profile, **options.get(args.task, {}))
    task.score_only = True
    from harness.health import headline_problems
    from harness.options import check_rate, check_scorer_args

    check_rate("--max-failure-rate", args.max_failure_rate)
    scorer_args = json_arg("--scorer-args", args.scorer_args)
    check_scorer_args(scorer_args)           # before the documents and predictions are read
    results = None if args.no_cache else Path(args.results)
    res, scorers = score(task, model_for(task, args.predictions, args.images), scorer_args,
                         max_failure_rate=args.max_failure_rate, results=results, repair_cache=args.repair_cache,
                         progress=not args.no_progress)
    if scorers["requests"]:
        import sys

        where = f"the response cache in {results / 'cache'}" if results is not None else "no cache (--no-cache)"
        print(f"scorer requests: {scorers['requests']}, {scorers['cached']} of them answered from {where}",
              file=sys.stderr)
    print(json.dumps({"task": task.name, "profile": task.profile,
                      "metrics": {k: m.to_dict() for k, m in res.metrics.items()},
                      "missing_predictions": res.missing_predictions}, indent=2))
    if args.output:
        write_task_result(Path(args.output), res)
    _headline_verdict(*headline_problems({task.name: res}), "the scores are incomplete")
    return 0


def cmd_rescore(args, argv) -> int:
    from harness.api import RunConfig, build_tasks, evaluate
    from harness.artifacts import ArtifactStore
    from harness.replay import ReplayModel
    from harness.report import table
    from harness.results import load_run

    run_dir = Path(args.run_dir)
    manifest, _ = load_run(run_dir)
    if manifest.producer == "lmms-eval":
        raise HarnessError(f"{run_dir}: imported from lmms-eval; its scores are lmms-eval's and there are no stored "
                           "outputs of ours to rescore")
    tasks = args.tasks.split(",") if args.tasks else manifest.tasks
    unknown = [t for t in tasks if t not in manifest.tasks]
    if unknown:
        raise HarnessError(f"--tasks: {unknown[0]!r} is not part of this run ({', '.join(manifest.tasks)})")
    cfg = manifest.run_config(str(run_dir / "manifest.json"))
    samples = [run_dir / t / "samples.jsonl" for t in tasks if (run_dir / t / "samples.jsonl").exists()]
    model = ReplayModel(manifest.model, samples)
    output = run_dir.parent.parent
    model.artifacts = ArtifactStore(output / "artifacts")
    config = RunConfig(output=output, data=cfg.get("data"), limit=cfg.get("limit"),
                       batch_size=cfg.get("batch_size") or 8, seed=1234 if cfg.get("seed") is None else cfg["seed"],
                       profile=args.profile or cfg.get("profile"), run_name=run_dir.name, tags=cfg.get("tags") or {},
                       scorer_args=cfg.get("scorer_args") or {}, progress=not args.no_progress,
                       task_args={t: o for t, o in (cfg.get("task_args") or {}).items() if t in tasks},
                       cli=manifest.cli, threads=cfg.get("threads") or 1,
                       max_failure_rate=args.max_failure_rate if args.max_failure_rate is not None
                       else cfg.get("max_failure_rate"), repair_cache=args.repair_cache)
    task_objs = build_tasks(tasks, config)
    if args.profile:
        for task in task_objs:
            _check_replayable(task, model, config.seed, args.profile)
    result = evaluate(model, task_objs, config)
    print(table(result.results))
    print(f"\nrescored: {result.run_dir}")
    _headline_verdict(result.failures, result.notes, "the run is marked failed")
    return 0


def _check_replayable(task, model, seed: int, profile: str) -> None:
    """Refuse a profile whose prompts differ from the stored run's: every answer would be missing."""
    from harness.executor import derive_seed
    from harness.types import MODEL

    stage = task.stages()[0]
    keys = []
    for doc in task.docs()[:20]:
        for req in stage.build(doc, {}):
            if req.target == MODEL:
                doc_id = task.doc_id(doc)
                req = req.replace(task=task.name, doc_id=doc_id, stage=stage.name,
                                  seed=derive_seed(seed, task.name, doc_id, stage.name, req.sample))
                keys.append(req.key(model.fingerprint()))
    if keys and not any(model.has(k) for k in keys):
        raise HarnessError(f"rescore --profile {profile}: {task.name}'s prompts under this profile differ from the "
                           f"stored run's, so there is nothing to replay; evaluate it with "
                           f"`run --profile {profile}` instead")


def cmd_leaderboard(args, argv) -> int:
    import sys

    from harness.leaderboard import build_boards, default_out, summary, write_boards

    if args.all and args.names:
        raise HarnessError("give board names or --all, not both")
    boards, warnings = build_boards(args.results, args.names or None, spec_dir=args.specs,
                                    include_reported=args.include_reported)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"built {summary(write_boards(boards, args.out or default_out(args.results)))}")
    return 0


def cmd_import_lmms(args, argv) -> int:
    from harness.integrations.lmms_import import import_results
    from harness.report import table
    from harness.results import load_run

    run_dir = import_results(args.results_json, args.output, lmms_version=args.lmms_version,
                             cli=["python", "-m", "harness", *argv])
    _, results = load_run(run_dir)
    print(table(results))
    notes = [n for res in results.values() for n in res.scoring_notes or []]
    if notes:
        print("\nscoring differences from the official rules:\n" + "\n".join(f"  - {n}" for n in notes))
    print(f"\nimported: {run_dir}")
    return 0


def cmd_export(args, argv) -> int:
    from harness.export import export

    summary = export(args.run_dir, args.task, args.out)
    missing = f"; {summary['missing']} failed samples have no image" if summary["missing"] else ""
    print(f"exported {summary['written']} images of {summary['documents']} documents ({summary['layout']} layout) "
          f"to {summary['out']}{missing}")
    return 0
