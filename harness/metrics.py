"""Metric values with standard errors: analytic for means, bootstrap for anything else."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass
class Metric:
    value: float | None
    stderr: float | None = None
    n: int | None = None
    #: multiply by this for display (100 shows a fraction as a percentage)
    scale: float | None = None
    #: an imported metric that is the same quantity as another tool's metric of this name
    same_as: str | None = None

    def to_dict(self) -> dict:
        out = {"value": self.value, "stderr": self.stderr, "n": self.n}
        if self.scale is not None:
            out["scale"] = self.scale
        if self.same_as is not None:
            out["same_as"] = self.same_as
        return out


def mean(values: Sequence[float], scale: float | None = None) -> Metric:
    """Mean with its analytic standard error (sample standard deviation / sqrt(n))."""
    n = len(values)
    if n == 0:
        return Metric(None, None, 0, scale)
    m = math.fsum(values) / n
    if n < 2:
        return Metric(m, None, n, scale)
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return Metric(m, math.sqrt(var / n), n, scale)


def bootstrap(statistic: Callable[[list], float | None], items: Sequence, n_boot: int = 500, seed: int = 0,
              scale: float | None = None) -> Metric:
    """A statistic over items with a bootstrap standard error (seeded, so results are reproducible)."""
    items = list(items)
    value = statistic(items) if items else None
    if value is None or len(items) < 2:
        return Metric(value, None, len(items), scale)
    rng = random.Random(seed)
    stats = []
    for _ in range(n_boot):
        s = statistic([items[rng.randrange(len(items))] for _ in items])
        if s is not None:
            stats.append(s)
    if len(stats) < 2:
        return Metric(value, None, len(items), scale)
    mu = math.fsum(stats) / len(stats)
    sd = math.sqrt(math.fsum((s - mu) ** 2 for s in stats) / (len(stats) - 1))
    return Metric(value, sd, len(items), scale)


def normalize(metrics: dict) -> dict[str, dict]:
    """Accept Metric objects, {"value", ...} dicts or plain numbers; return {"value", "stderr", "n"} dicts."""
    out = {}
    for name, m in metrics.items():
        if isinstance(m, Metric):
            out[name] = m.to_dict()
        elif isinstance(m, dict):
            out[name] = {"value": m.get("value"), "stderr": m.get("stderr"), "n": m.get("n"),
                         **({"scale": m["scale"]} if "scale" in m else {})}
        elif m is None or isinstance(m, (int, float)):
            out[name] = {"value": m, "stderr": None, "n": None}
        else:
            raise TypeError(f"metric {name!r}: unsupported value {type(m).__name__}")
    return out
