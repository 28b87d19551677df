"""UniGame's aggregate numbers: the Consistency Score and the understanding Overall.

Consistency = 0.6 x UnifiedBench (0-100) + 0.4 x (WISE x 100), checked against UniGame Table 1
(Janus-Pro: 0.6 x 82.77 + 0.4 x 35 = 63.66). Understanding Overall = plain mean of VQAv2, MMMU, MMBench and
POPE in percent (Janus-Pro: (78.2 + 41.0 + 79.2 + 87.4) / 4 = 71.45, reported 71.4).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

UNDERSTANDING_BENCHMARKS = ("vqav2", "mmmu", "mmbench", "pope")


def _finite(name: str, value: float, lo: float, hi: float, unit: str) -> float:
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be {unit} in [{lo:g}, {hi:g}], got {value!r}")
    return value


def consistency_score(unified_bench: float, wise: float) -> float:
    """0.6 * UnifiedBench + 0.4 * (WISE * 100). UnifiedBench is 0-100, WISE a fraction in [0, 1]."""
    ub = _finite("unified_bench", unified_bench, 0.0, 100.0, "a 0-100 score")
    # A WISE percentage passed by mistake would silently dominate the sum, so insist on the fraction.
    w = _finite("wise", wise, 0.0, 1.0, "a fraction")
    return 0.6 * ub + 0.4 * (w * 100.0)


def understanding_overall(vqav2: float, mmmu: float, mmbench: float, pope: float) -> float:
    """Plain mean of the four understanding accuracies, all in percent (0-100)."""
    values = [_finite(n, v, 0.0, 100.0, "a percentage")
              for n, v in zip(UNDERSTANDING_BENCHMARKS, (vqav2, mmmu, mmbench, pope))]
    return sum(values) / len(values)


def understanding_overall_from(scores: Mapping[str, Optional[float]]) -> float:
    """Same as `understanding_overall`, from a {benchmark: percent} mapping; all four are required."""
    missing = [b for b in UNDERSTANDING_BENCHMARKS if scores.get(b) is None]
    if missing:
        raise ValueError(f"understanding overall needs {', '.join(UNDERSTANDING_BENCHMARKS)}; "
                         f"missing {', '.join(missing)}")
    return understanding_overall(*(scores[b] for b in UNDERSTANDING_BENCHMARKS))
