"""One self-contained static page: every board's table (sortable), notes and plots, with no external asset.

Plots are embedded as SVG data URIs in <img> tags, which keeps each drawing's ids and styles out of the page's DOM.
"""
from __future__ import annotations

import base64
from html import escape

from harness.leaderboard.build import Board
from harness.leaderboard.render import (blank_legend, cell_text, column_lines, data_note, has_origin, header,
                                       key_cells, legend)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#fff}
header{background:#1f3b57;color:#fff;padding:16px 28px}header h1{margin:0 0 4px;font-size:22px}
header a{color:#cfe3f7;margin-right:14px}main{padding:8px 28px 40px}
section.board{margin:28px 0;border-top:2px solid #dfe5eb;padding-top:8px}
p.data{background:#f4f7fa;border-left:4px solid #1f3b57;padding:6px 10px}
section.world p.data{border-left-color:#b7791f;background:#fdf6e9}
table.lb{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:8px 0}
table.lb th,table.lb td{border:1px solid #d5dce3;padding:4px 8px;white-space:nowrap}
table.lb thead th{background:#eef2f6}table.lb th.sortable{cursor:pointer}
table.lb th.sortable:after{content:" \\2195";color:#8896a5}
table.lb td.num{text-align:right}tr.reported td{background:#fbf4e6;font-style:italic}
tr.reported td.src{font-weight:600}tr.measured td.src{color:#5b6b7b}
span.d{color:#5b6b7b;font-size:12px}sup{font-size:10px}
ol.notes{font-size:12px;color:#3b4856}ul.cols{font-size:12px;color:#3b4856}
div.plots{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0}figure img{max-width:100%;border:1px solid #e3e8ee}
figcaption{font-size:12px;color:#3b4856}
"""

# Click a column header to sort by it; blanks always go last; a second click reverses.
JS = """
(function(){
  function key(td){
    var v = td.getAttribute('data-v');
    if (v === null || v === '') return null;
    var n = parseFloat(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortBy(table, idx, th){
    var body = table.tBodies[0];
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = key(a.cells[idx]), y = key(b.cells[idx]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      if (x < y) return asc ? -1 : 1;
      if (x > y) return asc ? 1 : -1;
      return 0;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    table.querySelectorAll('th.sortable').forEach(function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  }
  document.querySelectorAll('table.lb').forEach(function(table){
    table.querySelectorAll('th.sortable').forEach(function(th){
      th.addEventListener('click', function(){ sortBy(table, parseInt(th.getAttribute('data-i'), 10), th); });
    });
  });
})();
"""


def _marks(board: Board, ids: list[int]) -> str:
    return "".join(f'<sup><a href="#{board.spec.name}-n{i}">{i}</a></sup>' for i in ids)


def _value_td(board: Board, cell, decimals: int) -> str:
    if cell is None:
        return '<td class="num" data-v=""></td>'
    text = cell_text(cell, decimals, marks=False)
    main, _, deltas = text.partition(" (")
    body = "&mdash;" if main == "-" else escape(main)       # a blank with a reason: wider than "-" to be seen
    if deltas:
        body += f' <span class="d">({escape(deltas)}</span>'
    v = "" if cell.value is None else repr(round(cell.value, 6))
    return f'<td class="num" data-v="{v}">{body}{_marks(board, cell.note_ids)}</td>'


def table(board: Board) -> str:
    spec = board.spec
    keys, labels = header(board)
    groups = [(c.group, 1) for c in spec.visible]
    merged: list[list] = []
    for g, n in groups:
        if merged and merged[-1][0] == g:
            merged[-1][1] += n
        else:
            merged.append([g, n])
    out = [f'<table class="lb" id="table-{escape(spec.name)}"><thead>']
    if any(g for g, _ in merged):
        out.append(f'<tr><th colspan="{len(keys)}"></th>'
                   + "".join(f'<th colspan="{n}">{escape(g)}</th>' for g, n in merged) + "</tr>")
    out.append("<tr>" + "".join(f'<th class="sortable" data-i="{i}">{escape(t)}</th>'
                                for i, t in enumerate(keys + labels)) + "</tr></thead><tbody>")
    for row in board.rows:
        tds = [f'<td data-v="{escape(k)}">{escape(k)}</td>' for k in key_cells(board, row)]
        if has_origin(board):
            tds.append(f'<td class="src" data-v="reported">reported{_marks(board, row.note_ids)}</td>'
                       if row.reported else '<td class="src" data-v="measured">measured</td>')
        tds += [_value_td(board, row.cells.get(c.id), c.decimals) for c in spec.visible]
        out.append(f'<tr class="{"reported" if row.reported else "measured"}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def section(board: Board, plots: list[tuple[str, str]]) -> str:
    spec = board.spec
    parts = [f'<section class="board {spec.data}" id="{escape(spec.name)}"><h2>{escape(spec.title)}</h2>']
    if spec.description:
        parts.append(f"<p>{escape(spec.description.strip())}</p>")
    parts.append(f'<p class="data">{escape(data_note(board))}</p>')
    if board.rows:
        parts.append(table(board))
        parts.append(f'<p class="legend">{escape(legend(board) + " " + blank_legend(board))}</p>')
    else:
        parts.append('<p class="empty">No stored results meet this table\'s requirements yet.</p>')
    if board.footnotes:
        parts.append('<ol class="notes">' + "".join(f'<li id="{escape(spec.name)}-n{i}">{escape(t)}</li>'
                                                     for i, t in enumerate(board.footnotes, 1)) + "</ol>")
    parts.append('<details><summary>Columns and data</summary><ul class="cols">'
                 + "".join(f"<li>{escape(line[2:])}</li>" for line in column_lines(board)) + "</ul></details>")
    if plots:
        parts.append('<div class="plots">')
        for title, svg in plots:
            uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
            parts.append(f'<figure><img class="plot" alt="{escape(title)}" src="{uri}">'
                         f"<figcaption>{escape(title)}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def page(boards: list[tuple[Board, list]], title: str = "Leaderboards") -> str:
    nav = "".join(f'<a href="#{escape(b.spec.name)}">{escape(b.spec.title)}</a>' for b, _ in boards)
    body = "\n".join(section(b, plots) for b, plots in boards)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head>\n"
            f"<body><header><h1>{escape(title)}</h1><p>Regenerated from the results store by "
            f"<code>python -m harness leaderboard</code>. Rows marked reported are published numbers, not "
            f"measurements.</p><nav>{nav}</nav></header>\n<main>\n{body}\n</main>\n<script>{JS}</script>"
            "</body></html>\n")
