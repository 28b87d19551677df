"""Leaderboard specs: leaderboards/<name>.yaml -> Spec objects (one per variant).

    order: 10                        # position on the page (world variants follow every real board)
    title: Understanding
    description: ...
    data: real                       # real | world: which numbers the board may hold
    requires: {source: hub, profile: official, version: newest, full: true}   # every cell must match these
    rows: {by: model}                # or {by: [base_model, method], seeds: seed, last_step: true, where: {...}}
    columns: [vqav2, {use: mmmu, hidden: true}, {task: pope, metric: f1, label: POPE, require: {...}}]
    aggregates: [overall]            # {id, kind: understanding_overall | consistency_score, inputs: {param: column}}
    deltas: {key: method, against: [base, sft]}
    sort: [{by: overall, order: desc}, {by: method, order: [base, sft, unigame]}]
    plots: [{kind: scatter, x: consistency, y: overall}, {kind: bars, columns: [...]}, {kind: curves, columns: [...]}]
    variants: {world: {title: ..., requires: {source: shapes}, ignore: [judge]}}   # -> board <name>_world

Columns named by id come from leaderboards/columns.yaml, so each requirement (WISE judge, UnifiedBench backbone
set) is written once. Requirement keys: those in cells.FIELDS, `full` (no --limit), or a dotted path into
results.json; a value may be a list of accepted values, and `version: newest` means the highest version stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from harness.errors import HarnessError
from harness.leaderboard.cells import FIELDS
from harness.registry import AGGREGATES

#: published numbers and shared column definitions live beside the specs but are not boards
REPORTED_FILE = "reported.yaml"
COLUMNS_FILE = "columns.yaml"
SPEC_KEYS = {"name", "order", "title", "description", "data", "rows", "requires", "columns", "aggregates", "sort",
             "plots", "deltas", "variants", "reported", "row_labels"}
VARIANT_KEYS = {"title", "description", "data", "requires", "ignore", "reported"}
COLUMN_KEYS = {"use", "id", "task", "metric", "label", "group", "scale", "decimals", "require", "hidden",
               "reported_task"}
AGGREGATE_KEYS = {"use", "id", "kind", "inputs", "label", "group", "decimals", "hidden"}
ROW_KEYS = {"by", "seeds", "last_step", "where", "status"}
#: plot kind -> (required keys, optional keys)
PLOT_KINDS = {"scatter": ({"x", "y"}, {"title"}), "bars": ({"columns"}, {"panel", "color", "title"}),
              "curves": ({"columns"}, {"x", "line", "title"})}


@dataclass(frozen=True)
class Column:
    id: str
    task: str | None            # None for aggregates
    metric: str | None          # None: the task's headline metric
    label: str
    group: str = ""
    scale: float | None = None  # display multiplier when results.json carries none
    decimals: int = 2
    require: dict = field(default_factory=dict)
    hidden: bool = False        # computed (for aggregates and JSON) but not drawn in md/html tables
    reported_task: str | None = None   # which reported.yaml entry feeds this column (default: task)
    kind: str | None = None     # aggregate formula; None for a metric column
    inputs: dict = field(default_factory=dict)   # aggregate parameter -> column id

    @property
    def is_aggregate(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class RowRule:
    by: tuple[str, ...] = ("model",)     # ("model",) or manifest tag names
    seeds: str | None = None             # tag whose values are separate runs of the same row
    last_step: bool = False              # keep only the highest tags.step per row
    where: dict = field(default_factory=dict)   # tag -> allowed values
    status: tuple[str, ...] = ("complete",)


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    description: str
    data: str                            # "real" or "world": which numbers the board may hold
    rows: RowRule
    columns: tuple[Column, ...]
    requires: dict
    sort: tuple[dict, ...] = ()
    plots: tuple[dict, ...] = ()
    deltas: dict = field(default_factory=dict)
    reported: bool = True                # reported rows allowed on this board (with --include-reported)
    row_labels: dict = field(default_factory=dict)
    order: int = 100                     # position on the page; world variants follow all real boards
    path: str = ""

    def column(self, cid: str) -> Column:
        for c in self.columns:
            if c.id == cid:
                return c
        raise KeyError(cid)

    @property
    def visible(self) -> list[Column]:
        return [c for c in self.columns if not c.hidden]

    def requirement(self, col: Column) -> dict:
        return {**self.requires, **col.require}


def _fail(where: str, msg: str):
    raise HarnessError(f"{where}: {msg}")


def _check_keys(where: str, d, allowed: set) -> dict:
    if not isinstance(d, dict):
        _fail(where, f"expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        _fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return d


def _column(where: str, d, aggregate: bool, shared: dict) -> Column:
    # `vqav2` or {use: vqav2, hidden: true}: a definition from columns.yaml, so requirements live in one place
    d = {"use": d} if isinstance(d, str) else d
    _check_keys(where, d, AGGREGATE_KEYS if aggregate else COLUMN_KEYS)
    if "use" in d:
        kind = "aggregates" if aggregate else "columns"
        base = (shared.get(kind) or {}).get(d["use"])
        if not isinstance(base, dict):
            _fail(where, f"{d['use']!r} is not defined under {kind} in {COLUMNS_FILE}")
        d = {**base, "id": d["use"], **{k: v for k, v in d.items() if k != "use"}}
    if aggregate:
        if not d.get("id") or not d.get("kind") or not isinstance(d.get("inputs"), dict):
            _fail(where, "an aggregate needs id, kind and inputs {parameter: column id}")
        if d["kind"] not in AGGREGATES:
            _fail(where, f"unknown aggregate kind {d['kind']!r} (known: {', '.join(AGGREGATES.names())})")
        params = AGGREGATES.load(d["kind"]).params
        if set(d["inputs"]) != set(params):
            _fail(where, f"aggregate {d['kind']} takes inputs {', '.join(params)}")
        return Column(id=str(d["id"]), task=None, metric=None, label=str(d.get("label", d["id"])),
                      group=str(d.get("group", "")), decimals=int(d.get("decimals", 2)),
                      hidden=bool(d.get("hidden", False)), kind=str(d["kind"]),
                      inputs={str(k): str(v) for k, v in d["inputs"].items()})
    if not d.get("task"):
        _fail(where, "a column needs a task")
    require = _requirements(where + ".require", d.get("require"))
    return Column(id=str(d.get("id", d["task"])), task=str(d["task"]), metric=d.get("metric"),
                  label=str(d.get("label", d["task"])), group=str(d.get("group", "")),
                  scale=float(d["scale"]) if d.get("scale") is not None else None,
                  decimals=int(d.get("decimals", 2)), require=require, hidden=bool(d.get("hidden", False)),
                  reported_task=d.get("reported_task"))


def _requirements(where: str, d) -> dict:
    """A known key (see cells.FIELDS, plus `full`) or a dotted path into results.json; a typo would otherwise
    blank every cell as "not recorded"."""
    d = _check_keys(where, d or {}, set(d or {}))
    for key in d:
        if key not in FIELDS and key != "full" and "." not in key:
            _fail(where, f"unknown requirement {key!r} (known: {', '.join([*FIELDS, 'full'])}, "
                         "or a dotted path into results.json such as settings.judge.model)")
    return dict(d)


def _rows(where: str, d) -> RowRule:
    d = _check_keys(where, d or {}, ROW_KEYS)
    by = d.get("by", "model")
    by = (by,) if isinstance(by, str) else tuple(by)
    if "model" in by and len(by) > 1:
        _fail(where, "rows.by is either 'model' or a list of manifest tag names")
    status = d.get("status", "complete")
    return RowRule(by=by, seeds=d.get("seeds"), last_step=bool(d.get("last_step", False)),
                   where={k: tuple(map(str, v if isinstance(v, list) else [v])) for k, v in
                          (d.get("where") or {}).items()},
                   status=(status,) if isinstance(status, str) else tuple(status))


def parse(raw: dict, path: str = "<spec>", shared: dict | None = None) -> list[Spec]:
    """One spec mapping -> the base board and its variants; `shared` is columns.yaml."""
    _check_keys(path, raw, SPEC_KEYS)
    name = raw.get("name") or Path(path).stem
    shared = shared or {}
    cols = [_column(f"{path}: columns[{i}]", c, False, shared) for i, c in enumerate(raw.get("columns") or [])]
    cols += [_column(f"{path}: aggregates[{i}]", a, True, shared)
             for i, a in enumerate(raw.get("aggregates") or [])]
    if not cols:
        _fail(path, "no columns")
    ids = [c.id for c in cols]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        _fail(path, f"column id {dup[0]!r} used twice")
    for c in cols:
        for param, ref in c.inputs.items():
            if ref not in ids or ids.index(ref) >= ids.index(c.id):
                _fail(path, f"aggregate {c.id!r}: input {param}={ref!r} is not a column defined before it")
    rows = _rows(f"{path}: rows", raw.get("rows"))
    sort = tuple({"by": s} if isinstance(s, str) else dict(s) for s in raw.get("sort") or [])
    keys = set(ids) | set(rows.by) | {"step", "label"}
    for s in sort:
        if s.get("by") not in keys:
            _fail(path, f"sort by {s.get('by')!r}: not a column id or row key ({', '.join(sorted(keys))})")
    deltas = _check_keys(f"{path}: deltas", raw.get("deltas") or {}, {"key", "against"})
    if deltas and (deltas.get("key") not in rows.by or not isinstance(deltas.get("against"), list)):
        _fail(path, "deltas: {key: <a rows.by tag>, against: [values of that tag]}")
    plots = tuple(dict(p) for p in raw.get("plots") or [])
    for i, p in enumerate(plots):
        needed, optional = PLOT_KINDS.get(p.get("kind"), (None, None))
        if needed is None:
            _fail(path, f"plot kind {p.get('kind')!r}: expected one of {', '.join(PLOT_KINDS)}")
        _check_keys(f"{path}: plots[{i}]", p, needed | optional | {"kind"})
        refs = [p.get("x"), p.get("y")] if p["kind"] == "scatter" else list(p.get("columns") or [])
        if not needed <= set(p) or any(r not in ids for r in refs):
            _fail(path, f"plot {p.get('kind')}: needs {', '.join(sorted(needed))} naming column ids")
    base = dict(name=str(name), title=str(raw.get("title", name)), description=str(raw.get("description", "")),
                data=str(raw.get("data", "real")), rows=rows, columns=tuple(cols),
                requires=_requirements(f"{path}: requires", raw.get("requires")), sort=sort, plots=plots,
                deltas=dict(deltas), reported=bool(raw.get("reported", True)),
                row_labels=dict(raw.get("row_labels") or {}), order=int(raw.get("order", 100)), path=str(path))
    specs = [Spec(**base)]
    for vname, v in (raw.get("variants") or {}).items():
        v = _check_keys(f"{path}: variants.{vname}", v, VARIANT_KEYS)
        ignore = set(v.get("ignore") or [])
        # dropped keys leave both the board-wide and the per-column requirements: the world has no GPT-4o judge
        vcols = tuple(replace(c, require={k: x for k, x in c.require.items() if k not in ignore}) for c in cols)
        requires = {k: x for k, x in {**base["requires"], **_requirements(f"{path}: variants.{vname}.requires",
                                                                          v.get("requires"))}.items()
                    if k not in ignore}
        specs.append(Spec(**{**base, "name": f"{name}_{vname}", "columns": vcols, "requires": requires,
                             "title": str(v.get("title", f"{base['title']} ({vname})")),
                             "description": str(v.get("description", base["description"])),
                             "data": str(v.get("data", vname)), "reported": bool(v.get("reported", False))}))
    for s in specs:
        if s.data not in ("real", "world"):
            _fail(path, f"data: {s.data!r}; expected 'real' or 'world'")
    return specs


def default_spec_dir() -> Path:
    """The leaderboards/ folder of this checkout (next to the harness package)."""
    return Path(__file__).resolve().parent.parent.parent / "leaderboards"


def load_specs(spec_dir: str | Path | None = None) -> dict[str, Spec]:
    """Every board declared in <spec_dir>/*.yaml (reported.yaml holds published numbers, not a board)."""
    spec_dir = Path(spec_dir) if spec_dir is not None else default_spec_dir()
    if not spec_dir.is_dir():
        raise HarnessError(f"--specs {spec_dir}: no such folder of leaderboard specs")
    out: dict[str, Spec] = {}
    shared = read_yaml(spec_dir / COLUMNS_FILE) if (spec_dir / COLUMNS_FILE).exists() else {}
    for path in sorted(spec_dir.glob("*.yaml")):
        if path.name in (REPORTED_FILE, COLUMNS_FILE):
            continue
        for spec in parse(read_yaml(path), path.name, shared):
            if spec.name in out:
                raise HarnessError(f"{path}: leaderboard {spec.name!r} is also declared in {out[spec.name].path}")
            out[spec.name] = spec
    return dict(sorted(out.items(), key=lambda kv: (kv[1].data == "world", kv[1].order, kv[0])))


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise HarnessError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: expected a mapping at the top level")
    return raw
