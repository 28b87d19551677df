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
    # the task profiles whose metric is the quantity the formula means (empty: any); a result with no profile
    # recorded ran the task's default
    profiles: tuple[str, ...] = ()

    def wrong_profile(self, profile: str | None) -> str | None:
        """Why a result of `profile` cannot feed this input, or None when it can."""
        if not self.profiles or profile is None or profile in self.profiles:
            return None
        return (f"{self.task}.{self.metric} of profile {profile} is not what the formula takes "
                f"(profile {' or '.join(self.profiles)})")


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


def _source(result) -> tuple:
    d = result.dataset
    return (d.source, d.revision if d.source == "shapes" else None) if d is not None else (None, None)


def compute_run(results: dict) -> dict[str, dict]:
    """Every registered aggregate whose inputs this run has ({task: TaskResult}): {name: {value, inputs,
    description, data | note}}."""
    from harness.registry import AGGREGATES

    out = {}
    for entry in AGGREGATES.entries():
        agg: Aggregate = AGGREGATES.load(entry.name)
        if not all(i.task in results for i in agg.inputs):
            continue
        record = {"inputs": [f"{i.task}.{i.metric}" for i in agg.inputs], "description": agg.description}
        values = {i.param: results[i.task].display_value(i.metric) for i in agg.inputs}
        wrong = [w for i in agg.inputs if (w := i.wrong_profile(results[i.task].profile))]
        if wrong:
            record.update(value=None, note="; ".join(wrong))
        elif len({_source(results[i.task]) for i in agg.inputs}) > 1:
            record.update(value=None, note="inputs come from different data sources; not combined")
        elif any(v is None for v in values.values()):
            record.update(value=None, note="an input metric has no value")
        else:
            record["value"] = agg.compute(values)
            record["data"] = _source(results[agg.inputs[0].task])[0]
        out[agg.name] = record
    return out
