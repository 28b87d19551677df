"""Published numbers (leaderboards/reported.yaml) as rows next to measured ones.

Each reported value keeps the identity the paper computed it with (UnifiedBench backbone set, WISE protocol, ...);
a column checks only the identity keys a reported value declares, since a paper has no harness task version or
scoring profile. Reported rows are never used in measured rows' aggregates or deltas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.leaderboard.cells import FIELDS, Cell, check
from harness.leaderboard.spec import read_yaml
from harness.results import TaskResult

UNITS = {"percent": 1.0, "fraction": 100.0}     # -> display units (fractions x100)
VALUE_KEYS = {"value", "unit", "note"}


@dataclass
class ReportedRow:
    label: str
    source: str                    # key into `sources`: the deltas of a reported row stay within its own paper
    citation: str
    fields: dict                   # model / base_model / method / step, to place the row on each board
    values: dict                   # task -> {value, unit, identity keys..., note}
    published: dict = field(default_factory=dict)   # aggregate kind -> value printed in the paper


def load_reported(path: str | Path) -> list[ReportedRow]:
    path = Path(path)
    if not path.exists():
        return []
    raw = read_yaml(path)
    sources, units = raw.get("sources") or {}, raw.get("units") or {}
    rows = []
    for i, r in enumerate(raw.get("rows") or []):
        where = f"{path.name}: rows[{i}]"
        if r.get("source") not in sources:
            raise HarnessError(f"{where}: source {r.get('source')!r} is not listed under sources")
        values = {}
        for task, v in (r.get("values") or {}).items():
            v = dict(v) if isinstance(v, dict) else {"value": v}
            unit = v.setdefault("unit", units.get(task))
            if unit not in UNITS or not isinstance(v.get("value"), (int, float)):
                raise HarnessError(f"{where}: {task} needs a numeric value and a unit "
                                   f"({' or '.join(UNITS)}, here or under units)")
            values[task] = v
        src = sources[r["source"]]
        citation = src.get("citation", r["source"]) + (f", {r['table']}" if r.get("table") else "")
        rows.append(ReportedRow(label=str(r.get("label", r.get("model"))), source=str(r["source"]),
                                citation=citation, values=values, published=dict(r.get("published") or {}),
                                fields={k: r[k] for k in ("model", "base_model", "method", "step") if k in r}))
    return rows


def reported_cell(row: ReportedRow, col, requires: dict) -> Cell | None:
    v = row.values.get(col.reported_task or col.task)
    if v is None:
        return None
    declared = {k: x for k, x in requires.items() if k in v}
    cell = Cell(source="reported", data=f"reported:{row.source}", seeds=1)
    why = check(_as_results(v, declared), declared) if declared else None
    if why:
        cell.notes.append(f"reported value: {why}")
        return cell
    cell.value = float(v["value"]) * UNITS[v["unit"]]
    if v.get("note"):
        cell.notes.append(v["note"])
    return cell


def _as_results(value: dict, keys) -> TaskResult:
    """A reported value's identity keys placed where results.json would keep them, so one check serves both."""
    out: dict = {"task": "reported", "metrics": {}}
    for k in keys:
        path = (FIELDS[k][1][0] if k in FIELDS else k).split(".")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value[k]
    return TaskResult.from_dict(out, "leaderboards/reported.yaml")
