"""Reading the results store and grouping its runs into leaderboard rows.

Rows are keyed either by model (the store's <model-slug> folder and the model's identity within it: checkpoints
named alike share a folder) or by manifest tags (the trainer writes method,
base_model, step, seed, train_run). Within a row, runs are kept per seed, newest first, so a cell can take the
newest run that holds its task and matches its column's requirements.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.results import Manifest, TaskResult, load_run


@dataclass
class Run:
    path: str                      # "<model-slug>/<run-id>", relative to the results folder
    manifest: Manifest
    results: dict[str, TaskResult]

    @property
    def tags(self) -> dict:
        return self.manifest.tags

    @property
    def recency(self) -> tuple:
        m = self.manifest
        return (float(m.finished or m.started or 0.0), m.run_id, self.path)

    @property
    def model_identity(self) -> str:
        """What tells two models apart within one store folder: the resolved path the run recorded (two
        checkpoints named alike in different runs share a folder), else how the model was named."""
        model = self.manifest.model
        return str(model.get("path") or model.get("label") or model.get("spec") or model.get("name") or "")

    @property
    def model_label(self) -> str:
        model = self.manifest.model
        return str(model.get("label") or model.get("spec") or model.get("name") or self.path.split("/")[0])


@dataclass
class RowRuns:
    key: tuple
    fields: dict                   # row key name -> display value
    seeds: dict[str, list[Run]] = field(default_factory=dict)   # seed ("" when untagged) -> runs, newest first


def scan(results_dir: str | Path) -> tuple[list[Run], list[str]]:
    """Every run folder under results_dir, with warnings for folders that cannot be read (they are skipped: one
    damaged run must not stop a leaderboard rebuilt after every training checkpoint)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise HarnessError(f"--results {root}: no such results folder")
    runs, warnings = [], []
    for manifest in sorted(root.glob("*/*/manifest.json")):
        rel = manifest.parent.relative_to(root).as_posix()
        try:
            m, results = load_run(manifest.parent)
        except HarnessError as e:
            warnings.append(f"skipped {rel}: {e}")
            continue
        runs.append(Run(rel, m, results))
    return runs, warnings


def tag_value(value):
    """Tags from `--tag` are strings; steps compare as numbers."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def sort_key(v) -> tuple:
    """Numbers before text, each in natural order, so mixed keys still sort deterministically."""
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def group(runs: list[Run], rule) -> list[RowRuns]:
    """Runs -> rows by the spec's `rows` rule; deterministic order (by key)."""
    rows: dict[tuple, RowRuns] = {}
    by_model = rule.by == ("model",)
    for run in runs:
        if run.manifest.status not in rule.status:
            continue
        tags = run.tags
        if any(str(tags.get(k)) not in allowed for k, allowed in rule.where.items()):
            continue
        if by_model:
            key = (run.path.split("/")[0], run.model_identity)
        else:
            if any(tags.get(k) in (None, "") for k in rule.by):
                continue
            key = tuple(tag_value(tags[k]) for k in rule.by)
        row = rows.setdefault(key, RowRuns(key, {}))
        seed = "" if rule.seeds is None or tags.get(rule.seeds) is None else str(tag_value(tags[rule.seeds]))
        row.seeds.setdefault(seed, []).append(run)
    out = []
    for key in sorted(rows, key=lambda k: tuple(sort_key(v) for v in k)):
        row = rows[key]
        if rule.last_step:
            # the final checkpoint of each (base model, method): the row the paper's tables show
            steps = [tag_value(r.tags.get("step", 0)) for rs in row.seeds.values() for r in rs]
            last = max((s for s in steps if isinstance(s, (int, float))), default=None)
            row.seeds = {s: [r for r in rs if tag_value(r.tags.get("step", 0)) == last]
                         for s, rs in row.seeds.items()}
            row.seeds = {s: rs for s, rs in row.seeds.items() if rs}
            row.key = key + (last,)
        for rs in row.seeds.values():
            rs.sort(key=lambda r: r.recency, reverse=True)
        row.seeds = dict(sorted(row.seeds.items(), key=lambda kv: sort_key(tag_value(kv[0]))))
        newest = max((r for rs in row.seeds.values() for r in rs), key=lambda r: r.recency)
        row.fields = ({"model": newest.model_label} if by_model else
                      {k: v for k, v in zip(rule.by, key)})
        if rule.last_step:
            row.fields["step"] = row.key[-1]
        out.append(row)
    if by_model:
        labels = [r.fields["model"] for r in out]
        for r in out:       # one spelling for two models (the same relative path from two folders): show where
            if labels.count(r.fields["model"]) > 1 and r.key[1] != r.fields["model"]:
                r.fields["model"] = f"{r.fields['model']} ({r.key[1]})"
    return out
