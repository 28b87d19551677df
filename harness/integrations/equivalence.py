"""How lmms-eval names and scores a benchmark, declared by the task (`Task.lmms`) and read by the importer.

A task that has lmms-eval counterparts sets `lmms = LmmsEquivalent(...)`: which lmms-eval tasks are exactly it,
which of lmms-eval's metrics compute the same quantity as ours (so leaderboard columns find them), which it stores
as percentages, and the known differences of lmms-eval's scoring from the official rule, as notes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping


def version_tuple(v: str | None) -> tuple[int, ...] | None:
    """(0, 7, 3) from "0.7.3", "v0.7.3" or "0.7.3@abc"; None when unknown (pip installs record "unknown@unknown")."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(v or ""))
    return tuple(int(x or 0) for x in m.groups()) if m else None


@dataclass(frozen=True)
class LmmsEquivalent:
    #: lmms-eval task names of this benchmark start with it; the notes apply to all of them
    prefix: str
    #: lmms-eval task -> our task, where both evaluate the same split of the same data
    tasks: Mapping[str, str] = field(default_factory=dict)
    #: our task -> {our metric: (lmms-eval metric, factor)} where the two compute the same quantity
    same_metric: Mapping[str, Mapping[str, tuple[str, float]]] = field(default_factory=dict)
    #: lmms-eval metrics of this benchmark stored x100 (everything else it reports is a fraction)
    percent_metrics: frozenset[str] = frozenset()
    #: (lmms-eval task, lmms-eval version or None) -> the known differences from the official scoring
    notes: Callable[[str, tuple[int, ...] | None], list[str]] = lambda task, version: []
