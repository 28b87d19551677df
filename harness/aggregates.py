"""Aggregates over several tasks (UniGame's Consistency Score, the understanding Overall): declared by the tasks
package in `registry.AGGREGATES`, computed here, for a run's derived.json and for leaderboard columns alike.

An aggregate names its formula's parameters, the (task, metric) each reads from a run, and the unit the formula
takes for each: "display", the number as results tables show it (fractions x100, metrics already on 0-100 as
stored), or "fraction" (display / 100). A run's aggregate is computed only when every input exists and all come from
the same data, so a world number is never combined with a real-benchmark number.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Mapping

UNITS = ("display", "fraction")


@dataclass(frozen=True)
class Input:
    param: str                  # the formula's parameter
    task: str                   # where a run's value comes from
    metric: str
    unit: str = "display"       # what the formula takes: "display" or "fraction"


@dataclass(frozen=True)
class Aggregate:
    name: str
    formula: str | Callable[..., float]     # "module:attr" (imported on first use) or the function
    inputs: tuple[Input, ...]
    description: str = ""

    def __post_init__(self):
        bad = [i.unit for i in self.inputs if i.unit not in UNITS]
        if bad:
            raise ValueError(f"aggregate {self.name}: unknown unit {bad[0]!r} (choose {', '.join(UNITS)})")

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(i.param for i in self.inputs)

    def function(self) -> Callable[..., float]:
        if callable(self.formula):
            return self.formula
        module, _, attr = self.formula.partition(":")
        return getattr(importlib.import_module(module), attr)

    def compute(self, display: Mapping[str, float]) -> float:
        """The aggregate from each parameter's value in display units; ValueError when one is out of range."""
        fn = self.function()
        return fn(**{i.param: display[i.param] / 100.0 if i.unit == "fraction" else float(display[i.param])
                     for i in self.inputs})


def display_value(result: dict, metric: str) -> float | None:
    """A stored metric in display units (value x its scale, or the task's display_scale)."""
    m = (result.get("metrics") or {}).get(metric) or {}
    if m.get("value") is None:
        return None
    return float(m["value"]) * float(m.get("scale") or result.get("display_scale") or 1.0)


def _source(result: dict) -> tuple:
    d = result.get("dataset", {})
    return (d.get("source"), d.get("revision") if d.get("source") == "shapes" else None)


def compute_run(results: dict[str, dict]) -> dict[str, dict]:
    """Every registered aggregate whose inputs this run has: {name: {value, inputs, description, data | note}}."""
    from harness.registry import AGGREGATES

    out = {}
    for entry in AGGREGATES.entries():
        agg: Aggregate = AGGREGATES.load(entry.name)
        if not all(i.task in results for i in agg.inputs):
            continue
        record = {"inputs": [f"{i.task}.{i.metric}" for i in agg.inputs], "description": agg.description}
        values = {i.param: display_value(results[i.task], i.metric) for i in agg.inputs}
        if len({_source(results[i.task]) for i in agg.inputs}) > 1:
            record.update(value=None, note="inputs come from different data sources; not combined")
        elif any(v is None for v in values.values()):
            record.update(value=None, note="an input metric has no value")
        else:
            record["value"] = agg.compute(values)
            record["data"] = results[agg.inputs[0].task].get("dataset", {}).get("source")
        out[agg.name] = record
    return out
