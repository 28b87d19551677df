"""Evaluating checkpoints through the harness (harness.api.evaluate) and regenerating the leaderboards.

Each evaluation is sharded over the training processes (RunConfig rank/world_size: docs[rank::world], rank 0
merges). Runs are tagged so leaderboards can group them: method (the run's label), base_model, step, seed,
train_run and the hyper-parameters; the untrained base model is evaluated once as method "base", step 0.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger("unigame")


def evaluate_model(spec: str, cfg, dist, device: str, output: Path, tags: dict):
    """Evaluate a model spec (a checkpoint folder, a name, a path) on cfg.eval_tasks; rank 0 gets the result."""
    from harness.api import RunConfig, evaluate
    from harness.models import resolve_model

    runner = resolve_model(spec, {"device": device})
    data = cfg.eval_data if cfg.eval_data is not None else getattr(runner, "default_data", None)
    config = RunConfig(output=output, data=data, limit=cfg.eval_limit, batch_size=cfg.eval_batch_size, tags=tags,
                       progress=True, rank=dist.rank, world_size=dist.world,
                       cli=["python", "-m", "unigame", *sys.argv[1:]])
    try:
        return evaluate(runner, list(cfg.eval_tasks), config)
    finally:
        runner.unload()


def summary(result) -> str:
    """Each task's headline in display units (fractions x100), e.g. "pope 79.42, vqav2_val 77.23"; "pope
    undefined" when the official formula has no value for the answers (the final table says why)."""
    parts = []
    for task, res in sorted((result.results or {}).items()):
        value = res.display_value()
        if value is not None:
            parts.append(f"{task} {value:.2f}")
        elif res.undefined_reason():
            parts.append(f"{task} undefined")
    return ", ".join(parts)


def build_leaderboards(results: Path, out: Path) -> str:
    """Regenerate every leaderboard from the results folder; says what happened in one line."""
    from harness.leaderboard import build_all, summary as built

    try:
        files = build_all(results, out)
    except Exception as e:  # a broken board must not lose a finished training run
        log.warning("leaderboards failed: %s: %s", type(e).__name__, e)
        return f"leaderboards failed: {type(e).__name__}: {e}"
    return f"leaderboards written: {built(files)}"
