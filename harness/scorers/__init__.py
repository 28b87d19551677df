"""Scorers: models and rules that score outputs (CLIP, detectors, judges, the world's parser...).

Each is registered lazily by name; tasks ask for them with `harness.task.score(name, kind, ...)`.
"""
from __future__ import annotations

from harness.errors import HarnessError
from harness.registry import SCORERS
from harness.runner import Scorer


def make_scorer(name: str, args: dict | None = None) -> Scorer:
    factory = SCORERS.load(name)
    try:
        return factory(**(args or {}))
    except TypeError as e:
        raise HarnessError(f"--scorer-args for {name}: {e}") from None
