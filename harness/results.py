"""The results schema: what a run folder's manifest.json and each task's results.json hold, written and read only
through this module (the engine, `show`, `rescore`, the leaderboards, the lmms-eval importer and the trainer).

    SCHEMA_VERSION 1. Files from before the schema carried a version have the same fields and are read as 1; a file
    with a newer version is refused with a message saying so. Fields this version does not know are kept
    (`extra`) and written back unchanged.

A TaskResult's metrics are stored as the benchmark's official code computes them (mostly fractions); `scale` (per
metric) or `display_scale` (per task) turns them into the units tables show.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.metrics import Metric
from harness.store import read_json, write_json
from harness.task import DatasetInfo

SCHEMA_VERSION = 1


def _check_version(d: dict, where: str) -> None:
    version = d.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise HarnessError(f"{where}: schema_version {version!r} is newer than this harness reads "
                           f"({SCHEMA_VERSION}); upgrade the harness to read it")


def _split(cls, d: dict) -> tuple[dict, dict]:
    known = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in d.items() if k in known}, {k: v for k, v in d.items() if k not in known}


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise HarnessError(f"{where}: {what}")


@dataclass
class Counts:
    """How many requests a task made, how many came from the cache, how many failed (imported results give
    documents instead)."""

    requests: int | None = None
    cached: int | None = None
    failed: int | None = None
    computed: int | None = None
    documents: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None or k == "failed"}

    @classmethod
    def from_dict(cls, d: dict) -> "Counts":
        return cls(**{k: d.get(k) for k in ("requests", "cached", "failed", "computed", "documents")})


def _metric_from(d, name: str, where: str) -> Metric:
    if isinstance(d, (int, float)) or d is None:
        return Metric(d)
    _need(isinstance(d, dict), where, f"metric {name!r} must be an object with a value")
    return Metric(d.get("value"), d.get("stderr"), d.get("n"), d.get("scale"), d.get("same_as"))


@dataclass
class TaskResult:
    """One task's results.json."""

    task: str
    metrics: dict[str, Metric]
    version: str | None = None
    headline: str | None = None
    details: Any = None
    counts: Counts = field(default_factory=Counts)
    dataset: DatasetInfo | None = None
    profile: str | None = None
    settings: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    runners: dict = field(default_factory=dict)
    display_scale: float = 100.0
    timing: dict = field(default_factory=dict)
    files: list[str] | None = None               # extra files written beside results.json
    producer: str | None = None                  # "lmms-eval" for imported results; None for this harness's own
    lmms_eval: dict | None = None
    scoring_notes: list[str] | None = None       # known differences from the official scoring rule
    missing_predictions: int | None = None       # `score`: documents without a prediction
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    # --- reading values ---------------------------------------------------------------------------------------
    def metric(self, name: str | None = None) -> Metric | None:
        """A metric by name (the headline when None)."""
        return self.metrics.get(name or self.headline or "")

    def scale(self, name: str | None = None) -> float:
        m = self.metric(name)
        return float(m.scale if m is not None and m.scale is not None else self.display_scale or 1.0)

    def display_value(self, name: str | None = None) -> float | None:
        """A metric in the units tables show (value x its scale)."""
        m = self.metric(name)
        return None if m is None or m.value is None else float(m.value) * self.scale(name)

    def undefined_reason(self, name: str | None = None) -> str | None:
        """Why a metric without a value is undefined by its official formula for these answers (POPE's F1 when a
        model never says yes): a measurement, not a failure. None when it has a value, the task gave no such
        reason, or requests failed (then the missing value is the failures' doing)."""
        name = name or self.headline or ""
        m = self.metric(name)
        if m is None or m.value is not None or self.counts.failed or not isinstance(self.details, dict):
            return None
        return self.details.get(f"{name}_undefined")

    def lookup(self, path: str):
        """The recorded value at a dotted path ("dataset.source", "settings.backbone_set"); None when absent."""
        obj: Any = self.to_dict()
        for part in path.split("."):
            if not isinstance(obj, dict) or part not in obj:
                return None
            obj = obj[part]
        return obj

    # --- (de)serialising --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"task": self.task, "version": self.version, "headline": self.headline,
               "metrics": {k: m.to_dict() for k, m in self.metrics.items()}, "details": self.details,
               "counts": self.counts.to_dict(), "dataset": self.dataset.to_dict() if self.dataset else {},
               "profile": self.profile, "settings": self.settings, "model": self.model, "runners": self.runners,
               "display_scale": self.display_scale, "timing": self.timing}
        for name in ("files", "producer", "lmms_eval", "scoring_notes", "missing_predictions"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return {**out, **self.extra, "schema_version": self.schema_version}

    @classmethod
    def from_dict(cls, d, where: str = "results.json") -> "TaskResult":
        _need(isinstance(d, dict), where, "not a results object")
        _check_version(d, where)
        known, extra = _split(cls, d)
        _need(isinstance(known.get("task"), str), where, "field 'task' must be the task's name")
        metrics = known.get("metrics") or {}
        _need(isinstance(metrics, dict), where, "field 'metrics' must be an object of metrics")
        known["metrics"] = {k: _metric_from(v, k, where) for k, v in metrics.items()}
        known["counts"] = Counts.from_dict(known.get("counts") or {})
        dataset = known.get("dataset")
        known["dataset"] = DatasetInfo.from_dict(dataset) if isinstance(dataset, dict) and dataset else None
        for name in ("settings", "model", "runners", "timing"):
            known[name] = known.get(name) or {}
        if known.get("display_scale") is None:
            known["display_scale"] = 100.0
        known["schema_version"] = SCHEMA_VERSION
        return cls(**known, extra=extra)


@dataclass
class Manifest:
    """A run folder's manifest.json: what ran, on what, how, and whether it finished."""

    run_id: str
    status: str                         # running | complete | failed | interrupted
    model: dict
    tasks: list[str]
    started: float | None = None
    finished: float | None = None
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)      # task -> dataset provenance
    cli: list[str] | None = None
    env: dict = field(default_factory=dict)
    world_size: int | None = 1
    tags: dict = field(default_factory=dict)
    invocations: list[dict] = field(default_factory=list)
    producer: str | None = None
    lmms_eval: dict | None = None
    imported: dict | None = None
    determinism: dict | None = None     # thread count and kernel settings the run used (harness/determinism.py)
    failure: dict | None = None         # why a run is `failed`: {"reason": one line, "tasks": [...] when a task's}
    #: tasks a suite selected that the model cannot serve (it lacks a capability) -> why; not in `tasks`
    skipped: dict | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    #: the types of the config fields the harness writes (a RunConfig); `rescore` runs the run again from them
    CONFIG_TYPES = {"data": "str?", "limit": "int?", "batch_size": "int?", "seed": "int?", "profile": "str?",
                    "tags": "object?", "scorer_args": "object?", "task_args": "object?", "threads": "int?",
                    "max_failure_rate": "number?"}

    def run_config(self, where: str = "manifest.json") -> dict:
        """The run's config, its fields type-checked (a tampered manifest gives one line, not a traceback)."""
        from harness.options import check_value

        for key, kind in self.CONFIG_TYPES.items():
            check_value(f"{where}: config.{key}", self.config.get(key), kind)
        _need(isinstance(self.model.get("fingerprint"), str), where, "field 'model.fingerprint' must be a string")
        return self.config

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("run_id", "status", "started", "finished", "model", "tasks", "config",
                                             "data", "cli", "env", "world_size", "tags", "invocations")}
        for name in ("producer", "lmms_eval", "imported", "determinism", "failure", "skipped"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return {**out, **self.extra, "schema_version": self.schema_version}

    @classmethod
    def from_dict(cls, d, where: str = "manifest.json") -> "Manifest":
        _need(isinstance(d, dict), where, "not a run manifest (expected a JSON object)")
        _check_version(d, where)
        known, extra = _split(cls, d)
        _need(isinstance(known.get("run_id"), str), where, "field 'run_id' must be the run's name")
        tasks = known.get("tasks")
        _need(isinstance(tasks, list) and all(isinstance(t, str) for t in tasks), where,
              "field 'tasks' must be a list of task names")
        # task names become folder names (show, rescore): a tampered manifest must not point outside the run
        _need(all(t and t not in (".", "..") and "/" not in t and "\\" not in t for t in tasks), where,
              "field 'tasks' holds a name that is not a plain folder name")
        known.setdefault("status", "unknown")
        _need(isinstance(known["status"], str), where, "field 'status' must be a string")
        _need(known.get("cli") is None or isinstance(known["cli"], list), where, "field 'cli' must be a list")
        known["model"] = known.get("model") or {}
        _need(isinstance(known["model"], dict), where, "field 'model' must be an object")
        for name in ("config", "data", "env", "tags"):
            known[name] = known.get(name) or {}
            _need(isinstance(known[name], dict), where, f"field {name!r} must be an object")
        known["invocations"] = known.get("invocations") or []
        _need(isinstance(known["invocations"], list) and all(isinstance(i, dict) for i in known["invocations"]),
              where, "field 'invocations' must be a list of objects")
        for name in ("determinism", "failure"):
            _need(known.get(name) is None or isinstance(known[name], dict), where, f"field {name!r} must be an object")
        skipped = known.get("skipped")
        _need(skipped is None or (isinstance(skipped, dict) and all(isinstance(v, str) for v in skipped.values())),
              where, "field 'skipped' must be an object of task name -> reason")
        known["schema_version"] = SCHEMA_VERSION
        return cls(**known, extra=extra)


# --- files ---------------------------------------------------------------------------------------------------
def write_task_result(path: Path, result: TaskResult) -> None:
    write_json(path, result.to_dict())


def read_task_result(path: Path) -> TaskResult:
    return TaskResult.from_dict(read_json(path), str(path))


def write_manifest(path: Path, manifest: Manifest) -> None:
    write_json(path, manifest.to_dict())


def read_manifest(path: Path) -> Manifest:
    return Manifest.from_dict(read_json(path), str(path))


def load_run(run_dir: str | Path) -> tuple[Manifest, dict[str, TaskResult]]:
    """(manifest, {task: results}) of a finished or partial run folder; tasks not finished are absent."""
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise HarnessError(f"{run_dir}: not a run folder (no manifest.json); "
                           "give a folder like results/<model>/<run-id>")
    manifest = read_manifest(run_dir / "manifest.json")
    results = {}
    for task in manifest.tasks:
        path = run_dir / task / "results.json"
        if path.exists():
            results[task] = read_task_result(path)
    return manifest, results


def read_derived(run_dir: str | Path) -> dict:
    """The run's cross-task aggregates (derived.json), {} when it has none."""
    path = Path(run_dir) / "derived.json"
    if not path.exists():
        return {}
    value = read_json(path)
    _need(isinstance(value, dict), str(path), "not an object of aggregates")
    return value


def write_derived(run_dir: str | Path, derived: dict) -> None:
    write_json(Path(run_dir) / "derived.json", derived)
