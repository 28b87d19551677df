"""Metrics derived from several tasks of one run (e.g. UniGame's Consistency Score), declared in `tasks.DERIVED`.

An entry is {"name", "inputs": [(task, metric[, scale]), ...], "fn": "module:attr", "description"}: the function
receives each input's stored value times its scale. A derived metric is computed only when every input exists in
the run and all inputs come from the same data (never a world number mixed with a real-benchmark number).
"""
from __future__ import annotations

import importlib


def _source(result: dict) -> tuple:
    d = result.get("dataset", {})
    return (d.get("source"), d.get("revision") if d.get("source") == "shapes" else None)


def compute(results: dict[str, dict]) -> dict[str, dict]:
    try:
        from tasks import DERIVED
    except ImportError:
        return {}
    out = {}
    for entry in DERIVED:
        inputs = [tuple(i) for i in entry["inputs"]]
        if not all(t in results for t, *_ in inputs):
            continue
        values, sources = [], set()
        for task, metric, *scale in inputs:
            m = results[task].get("metrics", {}).get(metric, {})
            values.append(None if m.get("value") is None else m["value"] * (scale[0] if scale else 1))
            sources.add(_source(results[task]))
        record = {"inputs": [f"{t}.{m}" for t, m, *_ in inputs], "description": entry.get("description", "")}
        if len(sources) > 1:
            record.update(value=None, note="inputs come from different data sources; not combined")
        elif any(v is None for v in values):
            record.update(value=None, note="an input metric has no value")
        else:
            module, _, attr = entry["fn"].partition(":")
            record["value"] = getattr(importlib.import_module(module), attr)(*values)
            record["data"] = results[inputs[0][0]].get("dataset", {}).get("source")
        out[entry["name"]] = record
    return out
