"""Registry of the world's benchmark builders: ``build(name, **kw)`` returns rows in that benchmark's schema."""
from __future__ import annotations

import inspect
from typing import Callable

from . import bench_geneval, bench_mmbench, bench_mmmu, bench_naturalbench, bench_pope, bench_vqa, bench_wise

BUILDERS: dict[str, Callable] = {
    "vqav2": bench_vqa.build_vqav2,
    "advqa": bench_vqa.build_advqa,
    "mmmu": bench_mmmu.build_mmmu,
    "pope": bench_pope.build_pope,
    "mmbench": bench_mmbench.build_mmbench,
    "naturalbench": bench_naturalbench.build_naturalbench,
    "geneval": bench_geneval.build_geneval,
    "wise": bench_wise.build_wise,
    "unified_bench": bench_wise.build_unified_bench,
}
COLUMNS = {
    "vqav2": bench_vqa.VQA_COLUMNS, "advqa": bench_vqa.VQA_COLUMNS, "mmmu": bench_mmmu.MMMU_COLUMNS,
    "pope": bench_pope.POPE_COLUMNS, "mmbench": bench_mmbench.MMBENCH_COLUMNS,
    "naturalbench": bench_naturalbench.NB_COLUMNS, "wise": bench_wise.WISE_COLUMNS,
}
_ALIASES = {"vqa": "vqav2", "vqa_v2": "vqav2", "ad_vqa": "advqa", "unifiedbench": "unified_bench",
            "unibench": "unified_bench"}
# literal text the builders emit beyond the shared question/caption templates (collected by text.vocabulary)
TEXTS = bench_vqa.TEXTS + bench_mmmu.TEXTS + bench_mmbench.TEXTS + bench_geneval.TEXTS


def names() -> list[str]:
    return list(BUILDERS)


def build(benchmark: str, **kw):
    """Build the world dataset of ``benchmark`` (see ``names()``); keyword arguments go to its builder:
    ``n`` (``n_images`` for POPE), ``seed``, ``size`` (image side; ignored by the text-only GenEval and WISE)."""
    key = benchmark.lower().replace(" ", "_").replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in BUILDERS:
        raise KeyError(f"unknown world benchmark {benchmark!r}; choose from {', '.join(BUILDERS)}")
    fn = BUILDERS[key]
    if "size" in kw and "size" not in inspect.signature(fn).parameters:
        kw = {k: v for k, v in kw.items() if k != "size"}
    return fn(**kw)
