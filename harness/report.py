"""Plain-text results tables for the terminal."""
from __future__ import annotations


def data_label(dataset: dict) -> str:
    source = dataset.get("source", "?")
    if source == "shapes":
        return f"world:{dataset.get('name', '')}@{dataset.get('revision', '')}"
    if source == "hub":
        rev = dataset.get("revision")
        return f"hub:{dataset.get('name')}" + (f"@{rev[:8]}" if rev else "")
    return f"{source}:{dataset.get('name')}"


def fmt(value, scale: float) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value * scale:.2f}"
    return str(value)


def results_rows(results: dict[str, dict], full: bool = True) -> list[list[str]]:
    rows = []
    for task, res in results.items():
        default_scale = res.get("display_scale", 1.0)
        metrics = res.get("metrics", {})
        headline = res.get("headline")
        order = ([headline] if headline in metrics else []) + [m for m in metrics if m != headline]
        if not full and headline in metrics:
            order = [headline]
        counts = res.get("counts", {})
        for i, name in enumerate(order):
            m = metrics[name]
            scale = m.get("scale", default_scale)
            rows.append([
                task if i == 0 else "", name + (" *" if name == headline else ""), fmt(m.get("value"), scale),
                fmt(m.get("stderr"), scale) if m.get("stderr") is not None else "-",
                str(m.get("n")) if m.get("n") is not None else "-",
                data_label(res.get("dataset", {})) if i == 0 else "", res.get("profile", "") if i == 0 else "",
                f"{counts.get('failed', 0)}" if i == 0 else "",
            ])
    return rows


def table(results: dict[str, dict], full: bool = False) -> str:
    """One row per task (its headline metric), or every metric with full=True."""
    header = ["task", "metric", "value", "stderr", "n", "data", "profile", "failed"]
    lines = _grid([header] + results_rows(results, full))
    notes = ["* headline metric", "fractions are shown x100"]
    if not full:
        notes.append("every metric: python -m harness show RUN_DIR --all")
    if any(r.get("dataset", {}).get("source") == "shapes" for r in results.values()):
        notes.append("numbers on world:* data come from the embedded shapes world, not from the real benchmarks")
    lines.append("; ".join(notes) + ".")
    return "\n".join(lines)


def comparison(runs: dict[str, dict[str, dict]]) -> str:
    """Each task's headline metric side by side across runs ({column label: {task: results.json}}), for "did it
    get better"; the data column says which data produced each row."""
    tasks = list(dict.fromkeys(t for results in runs.values() for t in results))
    header = ["task", "metric", *runs, "data"]
    rows = [header]
    for task in tasks:
        first = next(r[task] for r in runs.values() if task in r)
        headline = first.get("headline")
        cells = []
        for results in runs.values():
            res = results.get(task)
            m = (res or {}).get("metrics", {}).get(headline) or {}
            cells.append(fmt(m.get("value"), m.get("scale", res.get("display_scale", 1.0))) if res else "-")
        rows.append([task, headline or "", *cells, data_label(first.get("dataset", {}))])
    return "\n".join(_grid(rows))


def _grid(rows: list[list[str]]) -> list[str]:
    """Aligned columns, the first row a header underlined with dashes."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def derived_lines(derived: dict) -> str:
    lines = []
    for name, d in derived.items():
        value = "-" if d.get("value") is None else f"{d['value']:.2f}"
        note = f"  ({d['note']})" if d.get("note") else ""
        lines.append(f"{name} = {value}  from {', '.join(d['inputs'])}{note}")
    return "\n".join(lines)
