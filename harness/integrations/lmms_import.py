"""lmms-eval results file -> one run folder of our results store (`python -m harness import-lmms`).

lmms-eval 0.7.3 writes `<output_path>/[<model>/]<date>_results.json`: `results[task]` holds "<metric>,<filter>"
values with "<metric>_stderr,<filter>" beside them ("N/A" when it has none), and `configs`, `versions`,
`n-samples`, `config` (model, model_args, batch size, seeds), `date` and `lmms_eval_version` ("branch@commit",
which is "unknown@unknown" for pip installs: pass --lmms-version then). Per-sample logs, when written, lie beside
it as `<date>_samples_<task>.jsonl`.

Imported results say where they came from (`producer: "lmms-eval"`, profile "lmms", data source "lmms-eval"), keep
lmms-eval's metric names, add our metric name where lmms-eval computes the same quantity (so leaderboard columns
find it), and list the known scoring differences from the official rules (specs/benchmarks.md) in
`scoring_notes`. What is the same and what differs is declared by each task (`Task.lmms`, an LmmsEquivalent).
Nothing is rescored: the numbers are lmms-eval's.
"""
from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

from harness import registry
from harness.errors import HarnessError
from harness.integrations.equivalence import LmmsEquivalent, version_tuple
from harness.metrics import Metric
from harness.redaction import redact
from harness.results import Counts, Manifest, TaskResult, write_task_result
from harness.store import RunStore, read_json, slug, write_bytes
from harness.task import DatasetInfo

STDERR_SUFFIXES = ("_stderr_clustered", "_stderr_clt", "_stderr")
#: datasets builders a custom task names as dataset_path when its data are local files
GENERIC_BUILDERS = {"json", "csv", "parquet", "arrow", "text", "imagefolder", "audiofolder", "webdataset"}


def equivalents() -> list[LmmsEquivalent]:
    """Every registered task's lmms-eval declaration (`Task.lmms`), once each."""
    found: dict[int, LmmsEquivalent] = {}
    for name in registry.TASKS.names():
        eq = getattr(registry.TASKS.load(name), "lmms", None)
        if eq is not None:
            found.setdefault(id(eq), eq)
    return list(found.values())


def equivalent_of(lmms_task: str, known: list[LmmsEquivalent]) -> LmmsEquivalent | None:
    """The declaration of the benchmark an lmms-eval task belongs to (longest matching prefix)."""
    matches = [eq for eq in known if lmms_task.startswith(eq.prefix)]
    return max(matches, key=lambda eq: len(eq.prefix)) if matches else None


def scoring_notes(lmms_task: str, version: str | None, known: list[LmmsEquivalent] | None = None) -> list[str]:
    """Known differences between lmms-eval's scoring of this task and the official rule (specs/benchmarks.md)."""
    eq = equivalent_of(lmms_task, equivalents() if known is None else known)
    return eq.notes(lmms_task, version_tuple(version)) if eq else []


def _number(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def parse_metrics(entry: dict, n: int | None, percent: frozenset = frozenset()) -> tuple[dict, dict]:
    """lmms-eval's flat "<metric>,<filter>" keys -> ({name: {value, stderr, n}}, extras kept in details)."""
    metrics, extras = {}, {}
    for key, raw in entry.items():
        if "," not in key:
            continue
        name, _, filt = key.partition(",")
        base = next((name[:-len(s)] for s in STDERR_SUFFIXES
                     if name.endswith(s) and f"{name[:-len(s)]},{filt}" in entry), None)
        if base is not None:
            continue                       # read with its metric below
        label = name if filt == "none" else f"{name}:{filt}"
        value = _number(raw)
        if value is None:
            extras[label] = raw            # e.g. a submission-file "metric", whose aggregation returns nothing
            continue
        m = {"value": value, "stderr": _number(entry.get(f"{name}_stderr,{filt}")), "n": n}
        if name in percent or abs(value) > 1.0:
            m["scale"] = 1.0               # already 0-100 (a fraction never exceeds 1)
        metrics[label] = m
        # lmms-eval's CLT stderr is taken over each sample's "score" field, which for aggregate metrics (F1,
        # precision) is not the metric itself: kept for reference, never used as the metric's stderr
        for suffix in ("_stderr_clt", "_stderr_clustered"):
            if _number(entry.get(f"{name}{suffix},{filt}")) is not None:
                extras[f"{label}{suffix}"] = entry[f"{name}{suffix},{filt}"]
    return metrics, extras


def _parse_args(text) -> dict:
    if isinstance(text, dict):
        return text
    out = {}
    for part in str(text or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _model(config: dict, data: dict) -> tuple[dict, str]:
    """Model identity and the store's model folder name (the same as our own runs of that checkpoint)."""
    args = _parse_args(config.get("model_args"))
    name = config.get("model") or data.get("model_source") or "lmms-model"
    spec = args.get("checkpoint") or args.get("pretrained") or args.get("model") or data.get("model_name") or name
    path = Path(spec).expanduser()
    folder = slug(path.resolve().name) if path.exists() else slug(spec)
    return {"spec": spec, "name": name, "model_args": config.get("model_args"), "backend":
            config.get("model_backend"), "fingerprint": None, "producer": "lmms-eval"}, folder


def _started(data: dict) -> float | None:
    """lmms-eval's `date` is local time in --timezone (default Asia/Singapore); epoch seconds for recency."""
    try:
        moment = datetime.datetime.strptime(str(data.get("date")), "%Y%m%d_%H%M%S")
    except ValueError:
        return None
    tz_name = ((data.get("config") or {}).get("resolved_cli_args") or {}).get("timezone") or "Asia/Singapore"
    try:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(tz_name)
    except (ImportError, KeyError, ValueError):   # no tz database: the default zone is a fixed UTC+8
        tz = datetime.timezone(datetime.timedelta(hours=8))
    return round(moment.replace(tzinfo=tz).timestamp(), 3)


def _dataset_name(cfg: dict) -> str | None:
    """dataset_path, or for a local custom task (`dataset_path: json` + data_files) the builder and its file."""
    name = cfg.get("dataset_path")
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if name in GENERIC_BUILDERS and files:
        if isinstance(files, dict):
            files = files.get(cfg.get("test_split")) or next(iter(files.values()))
        if isinstance(files, list) and files:
            files = files[0]
        return f"{name}:{files}"
    return name


def _task_version(data: dict, task: str):
    v = (data.get("versions") or {}).get(task)
    meta = ((data.get("configs") or {}).get(task) or {}).get("metadata")
    # "Yaml" means the task YAML gave its version as a list, which lmms-eval ignores; read it from the list
    if v in (None, "Yaml", "N/A"):
        for item in meta if isinstance(meta, list) else [meta]:
            if isinstance(item, dict) and "version" in item:
                return str(item["version"])
    return None if v is None else str(v)


def task_result(data: dict, task: str, model: dict, lmms_info: dict, timing: dict,
                known: list[LmmsEquivalent]) -> tuple[str, dict]:
    entry = data["results"][task]
    cfg = (data.get("configs") or {}).get(task) or {}
    counts = (data.get("n-samples") or {}).get(task) or {}
    n = counts.get("effective")
    eq = equivalent_of(task, known) or LmmsEquivalent(prefix=task)
    metrics, extras = parse_metrics(entry, n, eq.percent_metrics)
    ours = eq.tasks.get(task, task)
    headline = None
    for our_name, (theirs, factor) in eq.same_metric.get(ours, {}).items():
        if theirs in metrics and metrics[theirs]["value"] is not None:
            m = metrics[theirs]
            metrics[our_name] = {"value": m["value"] * factor, "n": n, "same_as": theirs,
                                 "stderr": None if m["stderr"] is None else m["stderr"] * factor}
            headline = headline or our_name
    declared = [m.get("metric") for m in cfg.get("metric_list") or [] if isinstance(m, dict)]
    headline = headline or next((m for m in [*declared, *metrics] if m in metrics), None)
    subtasks = (data.get("group_subtasks") or {}).get(task) or []
    dataset = {"source": "lmms-eval", "name": _dataset_name(cfg) or f"group {task}",
               "split": cfg.get("test_split"), "n_total": counts.get("original"), "n_evaluated": n,
               "extra": {k: v for k, v in {"config": cfg.get("dataset_name"),
                                           "revision": (cfg.get("dataset_kwargs") or {}).get("revision"),
                                           "data_files": (cfg.get("dataset_kwargs") or {}).get("data_files"),
                                           "lmms_task_hash": (data.get("task_hashes") or {}).get(task)}.items()
                         if v is not None}}
    version = _task_version(data, task)
    res = TaskResult(
        task=ours, version=version, headline=headline, metrics={k: Metric(**m) for k, m in metrics.items()},
        details={"lmms_task": task, "lmms_extra": extras or None, "subtasks": subtasks or None,
                 "higher_is_better": (data.get("higher_is_better") or {}).get(task)},
        counts=Counts(documents=n), dataset=DatasetInfo.from_dict(dataset), profile="lmms",
        settings={"generation_kwargs": cfg.get("generation_kwargs"), "num_fewshot": (data.get("n-shot") or {})
                  .get(task), "output_type": cfg.get("output_type"),
                  "metric_list": [str(m.get("metric")) for m in cfg.get("metric_list") or []]},
        model=model, runners={}, display_scale=100.0, timing=timing,
        producer="lmms-eval", lmms_eval={**lmms_info, "task": task, "task_version": version},
        scoring_notes=eq.notes(task, version_tuple(lmms_info.get("version"))))
    return ours, res


def import_results(path: str | Path, output: str | Path, lmms_version: str | None = None,
                   cli: list[str] | None = None) -> Path:
    """Write one run folder for an lmms-eval results file; return it. Re-importing a file replaces its run."""
    path = Path(path)
    if path.is_dir():
        found = sorted(str(p.relative_to(path)) for p in path.glob("**/*_results.json"))
        raise HarnessError(f"{path}: a folder; give one results file" + (f", e.g. {path / found[-1]} "
                           f"({len(found)} found)" if found else " (lmms-eval's <date>_results.json)"))
    if not path.is_file():
        raise HarnessError(f"{path}: no such file (give lmms-eval's <date>_results.json)")
    raw = path.read_bytes()
    # model_args and the CLI arguments can hold an HF token or an API key: gone before anything reads the file
    data = redact(read_json(path))
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not data["results"]:
        raise HarnessError(f"{path}: not an lmms-eval results file (no 'results' object with tasks)")
    config = data.get("config") or {}
    model, folder = _model(config, data)
    recorded = data.get("lmms_eval_version")
    lmms_info = {"version": lmms_version or (recorded if version_tuple(recorded) else None),
                 "version_string": recorded, "git_hash": data.get("git_hash"), "results_file": str(path.resolve())}
    started = _started(data)
    wall = _try_float(data.get("total_evaluation_time_seconds"))
    finished = round(started + wall, 3) if started is not None and wall is not None else started
    timing = {"started": started, "finished": finished, "wall_seconds": wall, "scope": "whole lmms-eval run"}
    # `date` comes from the file: a folder-name slug of it, so no value can point the run outside --output
    date = slug(str(data.get("date") or "undated"))
    run_id = f"lmms-{date}-{hashlib.sha256(raw).hexdigest()[:8]}"
    store = RunStore(Path(output), folder, run_id)
    results = {}
    known = equivalents()
    for task in data["results"]:
        ours, res = task_result(data, task, model, lmms_info, timing, known)
        if ours in results:
            raise HarnessError(f"{path}: two lmms-eval tasks map to our task {ours!r}")
        samples = path.parent / f"{slug(str(data.get('date', '')).replace(':', '-'))}_samples_{slug(task)}.jsonl"
        if samples.is_file():
            write_bytes(store.task_dir(slug(ours)) / "lmms_samples.jsonl", samples.read_bytes())
            res.files = ["lmms_samples.jsonl"]
        results[ours] = res
    for ours, res in results.items():
        write_task_result(store.task_dir(slug(ours)) / "results.json", res)
    from harness import __version__
    from harness.store import git_sha, now

    store.write_manifest(Manifest(
        run_id=run_id, status="complete", started=started, finished=finished, producer="lmms-eval", model=model,
        tasks=[slug(t) for t in results], config={k: v for k, v in config.items() if k != "resolved_cli_args"},
        lmms_eval={**lmms_info, "cli_args": config.get("resolved_cli_args")}, cli=cli,
        imported={"at": now(), "by": f"harness {__version__}", "git_sha": git_sha()}, tags={}, world_size=None))
    return store.dir


def _try_float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
