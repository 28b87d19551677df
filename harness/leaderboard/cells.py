"""Cells: one number per (row, column), only from results that match the column's requirements.

A result whose data source, scoring profile, task version, judge or backbone set differs from what the column asks
for never reaches a cell: the cell stays blank and says why. A task the run skipped because the model lacks what it
needs (an understanding-only model on GenEval) is "not applicable": neither a number nor a failure. Values are kept in display units (fractions x100;
metrics already on a 0-100 scale as stored), which is also the unit the aggregate formulas take.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from harness.report import data_label
from harness.registry import AGGREGATES

MISSING = object()
#: requirement key -> (what it is called in a footnote, where results.json keeps it, first found wins)
FIELDS = {
    "source": ("data source", ("dataset.source",)),
    "dataset": ("dataset", ("dataset.name",)),
    "split": ("split", ("dataset.split",)),
    "revision": ("data revision", ("dataset.revision",)),
    "profile": ("scoring profile", ("profile",)),
    "version": ("task version", ("version",)),
    "backbone_set": ("UnifiedBench backbone set", ("settings.backbone_set", "details.backbone_set")),
    "protocol": ("WISE protocol", ("settings.protocol", "details.protocol")),
    "judge": ("judge", ("settings.judge.model", "settings.judge", "settings.judge_model")),
}


@dataclass
class Cell:
    value: float | None = None          # display units
    stderr: float | None = None         # standard error of the benchmark mean (one run)
    spread: float | None = None         # standard deviation across seeds
    seeds: int = 0                      # seeds behind the value
    notes: list[str] = field(default_factory=list)   # why blank, or a caveat on the value
    data: str | None = None             # data label, e.g. hub:lmms-lab/VQAv2@1a2b3c4d or world:...
    source: str | None = None           # dataset source kind: keeps world and real numbers apart in aggregates
    version: str | None = None
    profile: str | None = None
    runs: tuple[str, ...] = ()
    deltas: dict = field(default_factory=dict)
    note_ids: list[int] = field(default_factory=list)
    #: some result behind this cell is on the board's data (e.g. hub, not the world), matching or not: such rows
    #: stay on the board with their dashes; rows with none (a world-only model on a real board) are left out
    on_board: bool = False
    #: the model cannot do what the column's task needs (the run skipped it): shown as "not applicable"
    not_applicable: bool = False

    def to_json(self) -> dict:
        out = {"value": self.value, "stderr": self.stderr, "spread": self.spread, "seeds": self.seeds,
               "data": self.data, "version": self.version, "profile": self.profile, "runs": list(self.runs),
               "notes": list(self.notes)}
        if self.deltas:
            out["deltas"] = self.deltas
        if self.not_applicable:
            out["not_applicable"] = True
        return out


# --- requirements ----------------------------------------------------------------------------------------------
def lookup(obj, path: str):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return MISSING if obj is None or isinstance(obj, dict) else obj


def resolve(res, key: str):
    """The value a TaskResult records for a requirement key (a FIELDS name or a dotted path)."""
    recorded = res.to_dict()
    paths = FIELDS[key][1] if key in FIELDS else (key,)
    for p in paths:
        v = lookup(recorded, p)
        if v is not MISSING:
            return v
    if key == "judge":              # else the identity the judge scorer recorded for itself
        for target in sorted(res.runners):
            if "judge" in target:
                r = res.runners[target]
                for p in ("model", "fingerprint.model", "name"):
                    if lookup(r, p) is not MISSING:
                        return lookup(r, p)
    return MISSING


def version_key(v) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-_]", str(v)))


def mismatch(res, key: str, expected, newest: str | None = None) -> str | None:
    """Why the TaskResult `res` cannot fill a cell that requires key=expected (None: it can)."""
    if key == "full":
        n, total = (res.dataset.n_evaluated, res.dataset.n_total) if res.dataset else (None, None)
        if expected and n is not None and total is not None and n < total:
            return f"evaluated {n} of {total} documents (--limit); the table needs the whole set"
        return None
    if key == "version" and expected == "newest":
        if newest is None:
            return None
        expected = newest
    allowed = [str(x) for x in (expected if isinstance(expected, list) else [expected])]
    what = FIELDS[key][0] if key in FIELDS else key
    actual = resolve(res, key)
    want = " or ".join(repr(a) for a in allowed)
    if actual is MISSING:
        return f"{what} not recorded; the column needs {want}"
    if str(actual) not in allowed:
        return f"{what} {str(actual)!r}; the column needs {want}"
    return None


def check(res, requires: dict, newest: str | None = None) -> str | None:
    for key in sorted(requires, key=lambda k: (k != "source", k)):      # a world/real clash is named first
        reason = mismatch(res, key, requires[key], newest)
        if reason:
            return reason
    return None


# --- measured cells --------------------------------------------------------------------------------------------
def from_results(res, col, run_path: str) -> Cell:
    """A cell from one TaskResult."""
    cell = Cell(data=data_label(res.dataset), source=res.dataset.source if res.dataset else None,
                version=str(res.version), profile=res.profile, runs=(run_path,), seeds=1, on_board=True)
    metric = col.metric or res.headline
    m = res.metrics.get(metric)
    if m is None:
        cell.notes.append(f"{col.task} has no metric {metric!r}")
        return cell
    if m.value is None:
        failed = res.counts.failed
        undefined = res.undefined_reason(metric)
        if undefined:
            cell.notes.append(f"{col.task} {metric} is undefined for this model's answers ({undefined})")
        else:
            cell.notes.append(f"{col.task} {metric} has no value" + (f" ({failed} failed requests)" if failed else ""))
        return cell
    scale = m.scale or res.display_scale or col.scale or 100.0
    try:
        cell.value = float(m.value) * scale
        cell.stderr = float(m.stderr) * scale if m.stderr is not None else None
    except (TypeError, ValueError):
        cell.value = cell.stderr = None
        cell.notes.append(f"{col.task} {metric}: {m.value!r} is not a number")
    return cell


def pick(runs, col, requires: dict, newest: str | None) -> Cell | None:
    """The newest run's result for the column's task that matches; a blank cell saying why when results exist but
    none match; a "not applicable" cell when a run skipped the task because the model lacks what it needs; None
    when the task was never evaluated for this row."""
    reason, on_board, skipped, skipped_here = None, False, None, False
    for run in runs:
        res = run.results.get(col.task)
        if res is None:
            why = (run.manifest.skipped or {}).get(col.task)
            if why and skipped is None:
                skipped = f"{col.label}: not applicable, {col.task} {why}"
                # the row belongs on this board when the run evaluated something on the board's data
                skipped_here = "source" not in requires or any(
                    mismatch(r, "source", requires["source"]) is None for r in run.results.values())
            continue
        why = check(res, requires, newest)
        if why is None:
            return from_results(res, col, run.path)
        reason = reason or f"{col.label}: {why}"
        on_board = on_board or "source" not in requires or mismatch(res, "source", requires["source"]) is None
    if reason:
        return Cell(notes=[reason], on_board=on_board)
    return Cell(notes=[skipped], not_applicable=True, on_board=skipped_here) if skipped else None


def newest_version(rows, col, requires: dict) -> str | None:
    """`version: newest`: the highest task version among results that meet the column's other requirements, so
    numbers from an older prompt or scoring rule are never mixed into the same column."""
    others = {k: v for k, v in requires.items() if k != "version"}
    versions = {str(r.results[col.task].version) for row in rows for rs in row.seeds.values() for r in rs
                if col.task in r.results and check(r.results[col.task], others) is None}
    return max(versions, key=version_key) if versions else None


def combine(cells: list[Cell | None], n_seeds: int) -> Cell | None:
    """Seeds of one row -> mean ± standard deviation across the seeds that have a value."""
    present = [c for c in cells if c is not None]
    if not present:
        return None
    if all(c.not_applicable for c in present):
        return present[0]
    shown = [c for c in present if c.value is not None]
    reasons = list(dict.fromkeys(n for c in present if c.value is None for n in c.notes))
    on_board = any(c.on_board for c in present)
    if not shown:
        return Cell(notes=reasons[:1], on_board=on_board)
    if len({c.data for c in shown}) > 1:
        labels = ", ".join(sorted({str(c.data) for c in shown}))
        return Cell(notes=[f"seeds were evaluated on different data: {labels}"], on_board=on_board)
    if n_seeds == 1:
        return shown[0]
    values = [c.value for c in shown]
    mean = math.fsum(values) / len(values)
    first = shown[0]
    out = Cell(value=mean, seeds=len(shown), data=first.data, source=first.source, version=first.version,
               profile=first.profile, runs=tuple(r for c in shown for r in c.runs), on_board=True)
    if len(shown) > 1:
        out.spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    else:
        out.stderr = first.stderr
    if len(shown) < n_seeds:
        out.notes.append(f"mean over {len(shown)} of {n_seeds} seeds" + (f"; the others: {reasons[0]}"
                                                                         if reasons else ""))
    return out


# --- aggregates ------------------------------------------------------------------------------------------------
def aggregate(col, inputs: dict, labels: dict) -> Cell | None:
    """One run's (or one reported row's) aggregate from its input cells (display units); the stderr assumes
    independent inputs. The formula and the unit of each input are the registered aggregate's."""
    agg = AGGREGATES.load(col.kind)
    f = agg.compute
    if all(c is None for c in inputs.values()):
        return None
    inapplicable = [labels[p] for p, c in inputs.items() if c is not None and c.not_applicable]
    if inapplicable:
        return Cell(notes=[f"{col.label}: not applicable, the model cannot be evaluated on {', '.join(inapplicable)}"],
                    not_applicable=True)
    absent = [labels[p] for p, c in inputs.items() if c is None]
    valueless = [labels[p] for p, c in inputs.items() if c is not None and c.value is None]
    if absent or valueless:
        # a valueless input cell already says why (not comparable, undefined, failed): point there
        parts = ([f"{', '.join(absent)} (not evaluated)"] if absent else []) + \
            ([f"a value for {', '.join(valueless)} (see {'its cell' if len(valueless) == 1 else 'their cells'})"]
             if valueless else [])
        return Cell(notes=[f"{col.label} needs " + " and ".join(parts)])
    cells = list(inputs.values())
    wrong = [w for i in agg.inputs if i.param in inputs and (w := i.wrong_profile(inputs[i.param].profile))]
    if wrong:
        return Cell(notes=[f"{col.label}: " + "; ".join(wrong)])
    if len({c.source for c in cells}) > 1:
        return Cell(notes=[f"{col.label}: inputs come from different data sources; not combined"])
    x = {p: c.value for p, c in inputs.items()}
    try:
        value = f(x)
    except ValueError as e:
        return Cell(notes=[f"{col.label}: {e}"])
    stderr = None
    if all(c.stderr is not None for c in cells):
        # the formulas are linear: a finite difference gives each input's exact weight
        var = 0.0
        for p, c in inputs.items():
            h = -1e-3 if x[p] > 50 else 1e-3
            var += ((f({**x, p: x[p] + h}) - value) / h * c.stderr) ** 2
        stderr = math.sqrt(var)
    first = cells[0]
    return Cell(value=value, stderr=stderr, seeds=1, data=None, source=first.source,
                runs=tuple(sorted({r for c in cells for r in c.runs})))
