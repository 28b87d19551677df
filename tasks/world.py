"""The embedded world's dataset of each benchmark, in that benchmark's schema: ``build(name, **kw)``.

Each builder lives with its benchmark (tasks/<benchmark>/world.py) and draws scenes, questions and captions from
the world library (harness.world); this table names them for `--data shapes` and for the tiny-model factory.
"""
from __future__ import annotations

import inspect
from typing import Callable

from tasks.geneval import world as bench_geneval
from tasks.mmbench import world as bench_mmbench
from tasks.mmmu import world as bench_mmmu
from tasks.naturalbench import world as bench_naturalbench
from tasks.pope import world as bench_pope
from tasks.unified_bench import world as bench_unified_bench
from tasks.vqav2 import world as bench_vqa
from tasks.wise import world as bench_wise

BUILDERS: dict[str, Callable] = {
    "vqav2": bench_vqa.build_vqav2,
    "advqa": bench_vqa.build_advqa,
    "mmmu": bench_mmmu.build_mmmu,
    "pope": bench_pope.build_pope,
    "mmbench": bench_mmbench.build_mmbench,
    "naturalbench": bench_naturalbench.build_naturalbench,
    "geneval": bench_geneval.build_geneval,
    "wise": bench_wise.build_wise,
    "unified_bench": bench_unified_bench.build_unified_bench,
}
COLUMNS = {
    "vqav2": bench_vqa.VQA_COLUMNS, "advqa": bench_vqa.VQA_COLUMNS, "mmmu": bench_mmmu.MMMU_COLUMNS,
    "pope": bench_pope.POPE_COLUMNS, "mmbench": bench_mmbench.MMBENCH_COLUMNS,
    "naturalbench": bench_naturalbench.NB_COLUMNS, "wise": bench_wise.WISE_COLUMNS,
}
_ALIASES = {"vqa": "vqav2", "vqa_v2": "vqav2", "ad_vqa": "advqa", "unifiedbench": "unified_bench",
            "unibench": "unified_bench"}
# literal text the builders emit beyond the world's question/caption templates (a tokenizer for the world needs it:
# harness.world.text.vocabulary(TEXTS))
TEXTS = bench_vqa.TEXTS + bench_mmmu.TEXTS + bench_mmbench.TEXTS + bench_geneval.TEXTS


def names() -> list[str]:
    return list(BUILDERS)


def builder(benchmark: str) -> Callable[..., list]:
    """The builder of ``benchmark`` (see ``names()``), taking keyword arguments ``n`` (``n_images`` for POPE),
    ``seed`` and ``size`` (the image side; dropped for the text-only GenEval and WISE)."""
    key = benchmark.lower().replace(" ", "_").replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in BUILDERS:
        raise KeyError(f"unknown world benchmark {benchmark!r}; choose from {', '.join(BUILDERS)}")
    fn = BUILDERS[key]

    def build(**kw):
        if "size" in kw and "size" not in inspect.signature(fn).parameters:
            kw = {k: v for k, v in kw.items() if k != "size"}
        return fn(**kw)
    return build


def build(benchmark: str, **kw):
    """Build the world dataset of ``benchmark`` (see ``builder``)."""
    return builder(benchmark)(**kw)
