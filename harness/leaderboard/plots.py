"""Plots for the HTML page: performance vs consistency, method bars, training curves.

Drawn on matplotlib's Agg canvas through the Figure API (no pyplot, so no global backend switch in a process that
also trains) and saved as SVG with a fixed hash salt and no date: the same board draws the same bytes.
"""
from __future__ import annotations

import io
import math

from harness.leaderboard.build import Board, Row
from harness.leaderboard.cells import Cell

SALT = "umm-harness-leaderboard"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _svg(fig) -> str:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": SALT, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue().decode("utf-8")


def _err(cell: Cell) -> float | None:
    return cell.spread if cell.spread is not None else cell.stderr


def _value(row: Row, cid: str) -> Cell | None:
    c = row.cells.get(cid)
    return c if c is not None and c.value is not None else None


def _name(board: Board, row: Row) -> str:
    return row.label(board.spec) + (" (reported)" if row.reported else "")


def scatter(board: Board, p: dict) -> tuple[str, str] | None:
    spec = board.spec
    xcol, ycol = spec.column(p["x"]), spec.column(p["y"])
    points = [(r, _value(r, xcol.id), _value(r, ycol.id)) for r in board.rows]
    points = [pt for pt in points if pt[1] and pt[2]]
    if not points:
        return None
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    for i, (row, x, y) in enumerate(points):
        color = f"C{i % 10}"
        # hollow markers for published numbers, filled for measured ones
        ax.errorbar(x.value, y.value, xerr=_err(x), yerr=_err(y), fmt="o", ms=8, capsize=3, color=color,
                    mfc="none" if row.reported else color, label=_name(board, row))
    ax.set_xlabel(xcol.label)
    ax.set_ylabel(ycol.label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return p.get("title") or f"{ycol.label} vs {xcol.label}", _svg(fig)


def _grid(n: int, w: float, h: float):
    cols = min(3, n)
    fig = _figure(w * cols, h * math.ceil(n / cols))
    return fig, [fig.add_subplot(math.ceil(n / cols), cols, i + 1) for i in range(n)]


def bars(board: Board, p: dict) -> tuple[str, str] | None:
    spec = board.spec
    cols = [spec.column(c) for c in p["columns"]]
    rows = [r for r in board.rows if any(_value(r, c.id) for c in cols)]
    if not rows:
        return None
    panel, colour_by = p.get("panel"), p.get("color")
    panels = list(dict.fromkeys(str(r.fields.get(panel, "")) if panel else "" for r in rows))
    keys = list(dict.fromkeys(str(r.fields.get(colour_by)) if colour_by else _name(board, r) for r in rows))
    fig, axes = _grid(len(panels), 5.5, 3.6)
    for ax, pv in zip(axes, panels):
        members = [r for r in rows if not panel or str(r.fields.get(panel, "")) == pv]
        width = 0.8 / len(members)
        for j, row in enumerate(members):
            key = str(row.fields.get(colour_by)) if colour_by else _name(board, row)
            xs, ys, es = [], [], []
            for i, col in enumerate(cols):
                c = _value(row, col.id)
                if c:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(c.value)
                    es.append(_err(c) or 0.0)
            ax.bar(xs, ys, width, yerr=es, capsize=2, color=f"C{keys.index(key) % 10}",
                   hatch="//" if row.reported else None, edgecolor="black", linewidth=0.4,
                   label=key + (" (reported)" if row.reported and colour_by else ""))
        ax.set_xticks(range(len(cols)), [c.label for c in cols], rotation=30, ha="right", fontsize=8)
        ax.set_title(pv, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    return p.get("title") or "Method comparison", _svg(fig)


def curves(board: Board, p: dict) -> tuple[str, str] | None:
    spec = board.spec
    x_key, line_key = p.get("x", "step"), p.get("line", "train_run")
    cols = [spec.column(c) for c in p["columns"] if any(_value(r, c) for r in board.rows)]
    if not cols:
        return None
    lines = list(dict.fromkeys(str(r.fields.get(line_key)) for r in board.rows))
    fig, axes = _grid(len(cols), 4.2, 3.2)
    for ax, col in zip(axes, cols):
        for i, name in enumerate(lines):
            pts = sorted(((r.fields.get(x_key), _value(r, col.id)) for r in board.rows
                          if str(r.fields.get(line_key)) == name and _value(r, col.id)
                          and isinstance(r.fields.get(x_key), (int, float))), key=lambda t: t[0])
            if pts:
                ax.errorbar([x for x, _ in pts], [c.value for _, c in pts], yerr=[_err(c) or 0.0 for _, c in pts],
                            marker="o", ms=4, capsize=2, color=f"C{i % 10}", label=name)
        ax.set_title(col.label, fontsize=9)
        ax.set_xlabel(x_key, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    return p.get("title") or "Training curves", _svg(fig)


KINDS = {"scatter": scatter, "bars": bars, "curves": curves}


def draw(board: Board) -> list[tuple[str, str]]:
    """(title, SVG text) for each of the board's plots that has data."""
    out = []
    for p in board.spec.plots:
        drawn = KINDS[p["kind"]](board, p)
        if drawn is not None:
            out.append(drawn)
    return out
