"""Boards as Markdown, CSV and JSON: plain text, fixed precision, no timestamps, so a rebuild diffs cleanly."""
from __future__ import annotations

import csv
import io
import json

from harness.leaderboard.build import Board, Row
from harness.leaderboard.cells import FIELDS, Cell

BLANK_LEGEND = ("Empty cell: not evaluated. `-` with a note: results exist but do not meet the column's "
                "requirements, or have no value; they are never mixed in.")
NOT_APPLICABLE_LEGEND = ("`not applicable`: the model lacks what the task needs (e.g. image generation), so the run "
                         "skipped it.")


def blank_legend(board: Board) -> str:
    """What blank cells mean; the "not applicable" sentence only on boards that have such a cell."""
    inapplicable = any(c is not None and c.not_applicable for r in board.rows for c in r.cells.values())
    return BLANK_LEGEND + (" " + NOT_APPLICABLE_LEGEND if inapplicable else "")


NOT_APPLICABLE = "not applicable"


def num(x: float | None, decimals: int, sign: bool = False) -> str:
    if x is None:
        return ""
    if round(x, decimals) == 0:
        x = 0.0         # never print "-0.00"
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def cell_text(cell: Cell | None, decimals: int, marks: bool = True) -> str:
    """'83.40 ± 0.12 (Δbase +5.20, Δsft +3.90) [2]'; '-' for a blank with a reason; '' when not evaluated."""
    if cell is None:
        return ""
    if cell.not_applicable:
        text = NOT_APPLICABLE
    elif cell.value is None:
        text = "-"
    else:
        text = num(cell.value, decimals)
        pm = cell.spread if cell.spread is not None else cell.stderr
        if pm is not None:
            text += f" ± {num(pm, decimals)}"
        if cell.deltas:
            text += " (" + ", ".join(f"Δ{k} {num(v, decimals, sign=True)}" for k, v in cell.deltas.items()) + ")"
    if marks and cell.note_ids:
        text += " [" + ",".join(map(str, cell.note_ids)) + "]"
    return text


def key_label(board: Board, key: str) -> str:
    return str(board.spec.row_labels.get(key, key.replace("_", " ").capitalize()))


def requirement_text(requires: dict) -> str:
    parts = []
    order = ["source", "profile", "version", "full"]
    for k, v in sorted(requires.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 9, kv[0])):
        what = FIELDS[k][0] if k in FIELDS else k
        if k == "full":
            parts.append("the whole dataset (no --limit)" if v else "")
        elif k == "version" and v == "newest":
            parts.append("the newest task version in the store")
        else:
            parts.append(f"{what} " + " or ".join(repr(str(x)) for x in (v if isinstance(v, list) else [v])))
    return ", ".join(p for p in parts if p)


def column_lines(board: Board) -> list[str]:
    spec, lines = board.spec, []
    for col in spec.columns:
        where = f" ({col.group})" if col.group else ""
        hidden = "; not shown, an input of an aggregate" if col.hidden else ""
        if col.is_aggregate:
            args = ", ".join(spec.column(r).label for r in col.inputs.values())
            lines.append(f"- {col.label}{where}: {col.kind}({args}), computed per run{hidden}")
            continue
        extra = {k: v for k, v in col.require.items() if spec.requires.get(k) != v}
        data = ", ".join(board.data_labels(col.id)) or "none yet"
        req = f"; requires {requirement_text(extra)}" if extra else ""
        lines.append(f"- {col.label}{where}: {col.task} {col.metric or 'headline'}; data: {data}{req}{hidden}")
    return lines


def has_origin(board: Board) -> bool:
    """An Origin column (measured / reported) appears only when published rows are on the board."""
    return any(r.reported for r in board.rows)


def header(board: Board) -> tuple[list[str], list[str]]:
    """Key column labels (row keys, seeds, origin) and the visible value column labels."""
    keys = [key_label(board, k) for k in board.key_columns]
    keys += ["Seeds"] if board.spec.rows.seeds else []
    keys += ["Origin"] if has_origin(board) else []
    return keys, [c.label for c in board.spec.visible]


def key_cells(board: Board, row: Row) -> list[str]:
    """Row key values and seeds (the Origin cell is drawn by each format)."""
    out = ["" if row.fields.get(k) is None else str(row.fields.get(k)) for k in board.key_columns]
    return out + ([",".join(row.seeds)] if board.spec.rows.seeds else [])


def data_note(board: Board) -> str:
    spec = board.spec
    if spec.data == "world":
        kind = ("Embedded shapes world only: these numbers come from the procedurally generated world bundled "
                "with the harness, not from the real benchmarks, and are not comparable with them.")
    else:
        kind = "Real benchmark data only; numbers from the embedded shapes world are never shown here."
    req = requirement_text(spec.requires)
    return kind + (f" Every cell requires {req}." if req else "")


def legend(board: Board) -> str:
    text = "± is the standard error of the benchmark mean"
    if board.spec.rows.seeds:
        text += "; on rows with several seeds it is the standard deviation across seeds"
    text += "."
    if any(c.is_aggregate and not c.hidden for c in board.spec.columns):
        text += " Aggregates propagate standard errors assuming independent benchmarks."
    if board.spec.deltas.get("against"):
        refs = ", ".join(f"Δ{a}" for a in board.spec.deltas["against"])
        text += (f" {refs}: difference from the row with {board.spec.deltas['key']} = "
                 f"{' / '.join(board.spec.deltas['against'])} of the same "
                 f"{', '.join(k for k in board.spec.rows.by if k != board.spec.deltas['key'])} "
                 "(measured against measured, a paper against itself).")
    return text


def markdown(board: Board) -> str:
    spec = board.spec
    keys, labels = header(board)
    lines = [f"# {spec.title}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [data_note(board), ""]
    if not board.rows:
        lines += ["No stored results meet this table's requirements yet.", ""]
    else:
        lines.append("| " + " | ".join(keys + labels) + " |")
        lines.append("|" + "---|" * len(keys) + "---:|" * len(labels))
        for row in board.rows:
            keys = [f"*{x}*" if x and row.reported else x for x in key_cells(board, row)]
            if has_origin(board):
                keys.append(f"reported [{','.join(map(str, row.note_ids))}]" if row.reported else "measured")
            vals = [cell_text(row.cells.get(c.id), c.decimals) for c in spec.visible]
            lines.append("| " + " | ".join(x.replace("|", "\\|") for x in keys + vals) + " |")
        lines += ["", legend(board) + " " + blank_legend(board), ""]
    lines += ["Columns:", *column_lines(board), ""]
    if board.footnotes:
        lines += ["Notes:", *(f"[{i}] {t}" for i, t in enumerate(board.footnotes, 1)), ""]
    return "\n".join(lines)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def to_csv(board: Board) -> str:
    spec = board.spec
    head = list(board.key_columns) + ["seeds", "reported"]
    for c in spec.columns:
        head += [c.id, f"{c.id}_stderr", f"{c.id}_spread"]
        head += [f"{c.id}_delta_{a}" for a in spec.deltas.get("against") or []]
        head += [f"{c.id}_note"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in board.rows:
        out = ["" if row.fields.get(k) is None else row.fields.get(k) for k in board.key_columns]
        out += [",".join(row.seeds), "yes" if row.reported else "no"]
        for c in spec.columns:
            cell = row.cells.get(c.id) or Cell()
            out += [_r(cell.value), _r(cell.stderr), _r(cell.spread)]
            out += [_r(cell.deltas.get(a)) for a in spec.deltas.get("against") or []]
            out += ["; ".join(cell.notes)]
        w.writerow(["" if v is None else v for v in out])
    return buf.getvalue()


def to_json(board: Board) -> str:
    spec = board.spec

    def cell(c: Cell | None):
        if c is None:
            return None
        d = c.to_json()
        for k in ("value", "stderr", "spread"):
            d[k] = _r(d[k])
        if "deltas" in d:
            d["deltas"] = {k: _r(v) for k, v in d["deltas"].items()}
        return d

    obj = {
        "name": spec.name, "title": spec.title, "description": spec.description, "data": spec.data,
        "requires": spec.requires, "include_reported": board.include_reported, "row_keys": board.key_columns,
        "columns": [{"id": c.id, "label": c.label, "group": c.group, "task": c.task, "metric": c.metric,
                     "kind": c.kind, "inputs": c.inputs, "require": spec.requirement(c) if c.task else {},
                     "hidden": c.hidden, "data": board.data_labels(c.id)} for c in spec.columns],
        "rows": [{"key": row.fields, "label": row.label(spec), "reported": row.reported, "source": row.source,
                  "citation": row.citation, "seeds": row.seeds,
                  "cells": {c.id: cell(row.cells.get(c.id)) for c in spec.columns}} for row in board.rows],
        "footnotes": board.footnotes,
    }
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
