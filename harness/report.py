"""Plain-text results tables for the terminal."""
from __future__ import annotations


def data_label(dataset) -> str:
    """How a result names its data: world:NAME@VERSION, hub:ORG/NAME@REV, path:FILE (a DatasetInfo or its dict)."""
    if dataset is None:
        return "?"
    d = dataset if isinstance(dataset, dict) else dataset.to_dict()
    source = d.get("source", "?")
    if source == "shapes":
        return f"world:{d.get('name', '')}@{d.get('revision', '')}"
    if source == "hub":
        rev = d.get("revision")
        return f"hub:{d.get('name')}" + (f"@{rev[:8]}" if rev else "")
    return f"{source}:{d.get('name')}"


def fmt(value, scale: float) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value * scale:.2f}"
    return str(value)


def results_rows(results: dict, full: bool = True) -> list[list[str]]:
    """Rows of (task, metric, value, stderr, n, data, profile, failed) from {task: TaskResult}."""
    rows = []
    for task, res in results.items():
        metrics = res.metrics
        order = ([res.headline] if res.headline in metrics else []) + [m for m in metrics if m != res.headline]
        if not full and res.headline in metrics:
            order = [res.headline]
        for i, name in enumerate(order):
            m, scale = metrics[name], res.scale(name)
            value = "undefined" if res.undefined_reason(name) else fmt(m.value, scale)
            rows.append([
                task if i == 0 else "", name + (" *" if name == res.headline else ""), value,
                fmt(m.stderr, scale) if m.stderr is not None else "-", str(m.n) if m.n is not None else "-",
                data_label(res.dataset) if i == 0 else "", (res.profile or "") if i == 0 else "",
                f"{res.counts.failed or 0}" if i == 0 else "",
            ])
    return rows


def table(results: dict[str, dict], full: bool = False, skipped: dict | None = None) -> str:
    """One row per task (its headline metric), or every metric with full=True; then one row per task skipped because
    the model lacks what it needs (`skipped`: {task: why}), with the reason under the table."""
    header = ["task", "metric", "value", "stderr", "n", "data", "profile", "failed"]
    skipped = skipped or {}
    lines = _grid([header] + results_rows(results, full)
                  + [[task, "skipped", "n/a", "-", "-", "", "", ""] for task in skipped])
    for task, why in skipped.items():
        lines.append(f"skipped {task}: {why}")
    notes = ["* headline metric", "fractions are shown x100"]
    if not full:
        notes.append("every metric: python -m harness show RUN_DIR --all")
    if any(r.dataset is not None and r.dataset.source == "shapes" for r in results.values()):
        notes.append("numbers on world:* data come from the embedded shapes world, not from the real benchmarks")
    lines.append("; ".join(notes) + ".")
    return "\n".join(lines)


def comparison(runs: dict[str, dict]) -> str:
    """Each task's headline metric side by side across runs ({column label: {task: TaskResult}}), for "did it
    get better"; the data column says which data produced each row."""
    tasks = list(dict.fromkeys(t for results in runs.values() for t in results))
    header = ["task", "metric", *runs, "data"]
    rows, notes = [header], []
    for task in tasks:
        first = next(r[task] for r in runs.values() if task in r)
        cells = []
        for label, results in runs.items():
            res = results.get(task)
            m = res.metric(first.headline) if res else None
            why = res.undefined_reason(first.headline) if m is not None else None
            if why:
                notes.append(f"{task} {first.headline} of {label} is undefined: {why}")
            cells.append("undefined" if why else fmt(m.value, res.scale(first.headline)) if m is not None else "-")
        rows.append([task, first.headline or "", *cells, data_label(first.dataset)])
    return "\n".join(_grid(rows) + notes)


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


def history_lines(invocations: list[dict]) -> str:
    """The commands that worked on a run folder, when there is more than one or one ran out of memory: each one's
    status, the hardware it ran on and the batches it cut; and a warning when the answers come from different
    machines (identical only up to floating-point reduction order)."""
    import datetime

    if len(invocations) < 2 and not any(i.get("batch_limits") or i.get("other_hardware") for i in invocations):
        return ""
    lines = [f"history: {len(invocations)} command(s) worked on this run"]
    machines = set()
    for n, inv in enumerate(invocations, 1):
        when = inv.get("started")
        when = datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M") if isinstance(when, (int, float)) \
            else "?"
        machine = _machine(inv.get("hardware"))
        if machine:
            machines.add(machine)
        others = inv.get("other_hardware") or []         # ranks of one multi-node command on other machines
        if others:
            parts = [f"{machine or 'hardware not recorded'} (rank 0)"]
            for other in others:
                ranks = other.get("ranks") or []
                other_machine = _machine(other.get("hardware")) or "hardware not recorded"
                machines.add(other_machine)
                parts.append(f"{other_machine} (rank{'s' if len(ranks) > 1 else ''} {_spans(ranks)})")
            machine = "; ".join(parts)
        cut = ", ".join(f"{group} at most {size}" for group, size in (inv.get("batch_limits") or {}).items())
        lines.append(f"  {n}  {when}  {inv.get('status', 'unknown'):<11}  {machine or 'hardware not recorded'}"
                     + (f"; out of memory, batches cut: {cut}" if cut else ""))
    if len(machines) > 1:
        lines.append("note: this run's answers were computed on different machines; they agree only up to "
                     "floating-point reduction order")
    return "\n".join(lines)


def _spans(ranks: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    spans: list[list[int]] = []
    for r in sorted(ranks):
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _machine(hardware) -> str:
    if not isinstance(hardware, dict):
        return ""
    devices = (hardware.get("cuda") or {}).get("devices") or []
    if devices:
        names = [d.get("name", "?") for d in devices]
        return ", ".join(f"{name} x{names.count(name)}" for name in dict.fromkeys(names))
    return f"{hardware.get('cpu') or 'CPU'} ({hardware.get('cpu_count')} cores)"
