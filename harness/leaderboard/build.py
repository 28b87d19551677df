"""One board: rows from the store (and, when asked, from the papers), cells, aggregates, deltas, order, footnotes.

Everything here is a function of the spec and the stored files; nothing reads the clock or the environment, so the
same store always gives the same board.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.leaderboard.cells import Cell, aggregate, combine, newest_version, pick
from harness.leaderboard.reported import ReportedRow, reported_cell
from harness.leaderboard.select import Run, group, sort_key
from harness.leaderboard.spec import Spec

#: a published aggregate may differ from the one recomputed from its published inputs by its own rounding
PUBLISHED_TOLERANCE = 1e-9


@dataclass
class Row:
    fields: dict
    cells: dict[str, Cell | None]
    seeds: list[str] = field(default_factory=list)
    reported: bool = False
    source: str | None = None       # reported rows: which paper
    citation: str | None = None
    note_ids: list[int] = field(default_factory=list)

    def label(self, spec: Spec) -> str:
        keys = list(spec.rows.by) + (["step"] if spec.rows.last_step else [])
        return " / ".join(str(self.fields.get(k, "")) for k in keys if self.fields.get(k) not in (None, ""))


@dataclass
class Board:
    spec: Spec
    rows: list[Row]
    footnotes: list[str]
    include_reported: bool

    @property
    def key_columns(self) -> list[str]:
        return list(self.spec.rows.by) + (["step"] if self.spec.rows.last_step else [])

    def data_labels(self, cid: str) -> list[str]:
        return sorted({c.data for r in self.rows if not r.reported for c in [r.cells.get(cid)]
                       if c is not None and c.value is not None and c.data})


def _row_cells(spec: Spec, cell_for) -> dict[str, Cell | None]:
    """Cells of one run (or one reported row), aggregates after the columns they read."""
    cells: dict[str, Cell | None] = {}
    for col in spec.columns:
        if col.is_aggregate:
            labels = {p: spec.column(ref).label for p, ref in col.inputs.items()}
            cells[col.id] = aggregate(col, {p: cells[ref] for p, ref in col.inputs.items()}, labels)
        else:
            cells[col.id] = cell_for(col)
    return cells


def _has_value(spec: Spec, cells: dict) -> bool:
    return any(c is not None and c.value is not None for cid, c in cells.items() if not spec.column(cid).hidden)


def _on_board(spec: Spec, cells: dict) -> bool:
    return _has_value(spec, cells) or any(c is not None and c.on_board for c in cells.values())


def measured_rows(spec: Spec, runs: list[Run]) -> list[Row]:
    groups = group(runs, spec.rows)
    newest = {c.id: newest_version(groups, c, spec.requirement(c)) for c in spec.columns
              if not c.is_aggregate and spec.requirement(c).get("version") == "newest"}
    rows = []
    for g in groups:
        per_seed = [_row_cells(spec, lambda col, rs=rs: pick(rs, col, spec.requirement(col), newest.get(col.id)))
                    for rs in g.seeds.values()]
        cells = {c.id: combine([s[c.id] for s in per_seed], len(per_seed)) for c in spec.columns}
        if _on_board(spec, cells):
            rows.append(Row(dict(g.fields), cells, seeds=[s for s in g.seeds if s]))
    return rows


def reported_rows(spec: Spec, reported: list[ReportedRow]) -> list[Row]:
    rows = []
    keys = ("model",) if spec.rows.by == ("model",) else spec.rows.by
    for r in reported:
        fields = {"model": r.label} if keys == ("model",) else {k: r.fields.get(k) for k in keys}
        if any(v is None for v in fields.values()):
            continue
        if spec.rows.last_step:
            fields["step"] = r.fields.get("step")
        cells = _row_cells(spec, lambda col: reported_cell(r, col, spec.requirement(col)))
        for col in spec.columns:
            c, published = cells[col.id], r.published.get(col.kind or "")
            if col.is_aggregate and c is not None and c.value is not None and published is not None:
                decimals = len(str(published).partition(".")[2])
                if abs(c.value - published) > 0.5 * 10 ** -decimals + PUBLISHED_TOLERANCE:
                    c.notes.append(f"the paper prints {published}; its own inputs give {c.value:.{decimals + 2}f}")
        if _has_value(spec, cells):
            rows.append(Row(fields, cells, reported=True, source=r.source, citation=r.citation))
    return rows


def split_label(label: str) -> tuple[str, frozenset]:
    """'unigame(filter=none,und_lr=0.0005)' -> ('unigame', {'filter=none', 'und_lr=0.0005'})."""
    name, paren, rest = label.partition("(")
    if not paren or not rest.endswith(")"):
        return label, frozenset()
    return name, frozenset(p.strip() for p in rest[:-1].split(",") if p.strip())


def reference_row(rows: list[Row], row: Row, name: str, own_parts: frozenset, key: str, ident):
    """The `name` row to compare `row` with: same identity, and trained with a subset of `row`'s departures from
    the defaults, the largest such subset (so unigame(filter=none,und_lr=0.0005) is compared with
    sft(und_lr=0.0005), not with an sft at another learning rate); None when missing or ambiguous."""
    best, best_size, tie = None, -1, False
    want = ident(row)
    for other in rows:
        other_name, parts = split_label(str(other.fields.get(key)))
        if other_name != name or not parts <= own_parts or ident(other) != want:
            continue
        if len(parts) > best_size:
            best, best_size, tie = other, len(parts), False
        elif len(parts) == best_size:
            tie = True
    return None if tie else best


def add_deltas(spec: Spec, rows: list[Row]) -> None:
    """Differences against the same base model's reference rows (e.g. method base and sft), within one provenance:
    measured rows against measured rows, a paper's rows against the same paper's rows."""
    key, against = spec.deltas.get("key"), list(spec.deltas.get("against") or [])
    if not key or not against:
        return
    match = [k for k in spec.rows.by if k not in (key, "step")]

    def ident(row: Row) -> tuple:
        return (row.reported, row.source, *(str(row.fields.get(k)) for k in match))

    for row in rows:
        own, own_parts = split_label(str(row.fields.get(key)))
        # a reference row is compared only with those listed before it: sft against base, never base against sft
        refs = against[:against.index(own)] if own in against else against
        for a in refs:
            ref = reference_row(rows, row, a, own_parts, key, ident)
            if ref is None or ref is row:
                continue
            for col in spec.visible:
                c, b = row.cells.get(col.id), ref.cells.get(col.id)
                if c is not None and c.value is not None and b is not None and b.value is not None:
                    c.deltas[a] = c.value - b.value


def sort_rows(spec: Spec, rows: list[Row]) -> list[Row]:
    """Stable multi-key sort; rows missing a key go last in either direction."""
    rows = list(rows)
    for s in reversed(spec.sort):
        by, order = s["by"], s.get("order", "asc")

        def value(row: Row, by=by):
            if by in row.fields:
                return row.fields[by]
            if by == "label":
                return row.label(spec)
            c = row.cells.get(by)
            return None if c is None else c.value

        if isinstance(order, list):
            rank = {str(v): i for i, v in enumerate(order)}
            rows.sort(key=lambda r: rank.get(str(value(r)), len(rank)))
            continue
        present = [r for r in rows if value(r) is not None]
        absent = [r for r in rows if value(r) is None]
        present.sort(key=lambda r: sort_key(value(r)), reverse=(order == "desc"))
        rows = present + absent
    return rows


def number_notes(spec: Spec, rows: list[Row]) -> list[str]:
    """Footnotes numbered in reading order, one number per distinct text."""
    notes: list[str] = []

    def nid(text: str) -> int:
        if text not in notes:
            notes.append(text)
        return notes.index(text) + 1

    for row in rows:
        if row.citation:
            row.note_ids = [nid(f"Reported: {row.citation}.")]
        for col in spec.visible:
            c = row.cells.get(col.id)
            if c is not None:
                c.note_ids = [nid(n) for n in c.notes]
    return notes


def build_board(spec: Spec, runs: list[Run], reported: list[ReportedRow], include_reported: bool = False) -> Board:
    rows = measured_rows(spec, runs)
    if include_reported and spec.reported and spec.data == "real":
        rows += reported_rows(spec, reported)
    add_deltas(spec, rows)
    rows = sort_rows(spec, rows)
    return Board(spec, rows, number_notes(spec, rows), include_reported)
