"""A results store written in the engine's real format (manifest.json + results.json), for the leaderboard tests:
measured Janus-Pro rows, post-training runs, mismatching cells and a world run."""
from __future__ import annotations

import json
from pathlib import Path

#: task -> (headline metric, display_scale): unified_bench is stored on its own 0-100 scale
TASKS = {"vqav2_val": ("accuracy", 100.0), "mmmu_val": ("accuracy", 100.0), "pope": ("f1", 100.0),
         "mmbench_en_dev": ("circular_accuracy", 100.0), "naturalbench": ("g_acc", 100.0),
         "advqa_val": ("accuracy", 100.0), "geneval": ("overall", 100.0), "wise": ("overall", 100.0),
         "unified_bench": ("overall", 1.0), "unified_bench_uae": ("overall", 1.0)}
HUB = {"vqav2_val": "lmms-lab/VQAv2", "mmmu_val": "MMMU/MMMU", "pope": "lmms-lab/POPE",
       "mmbench_en_dev": "lmms-lab/MMBench", "naturalbench": "BaiqiL/NaturalBench", "advqa_val": "facebook/advqa",
       "geneval": "geneval/prompts", "wise": "Yuwei-Niu/WISE", "unified_bench": "UAE/UniBench",
       "unified_bench_uae": "UAE/UniBench"}
#: UniGame Tables 1-2, Janus-Pro-7B base, in the units the tasks store (fractions; UnifiedBench 0-100)
JANUS = {"vqav2_val": 0.782, "mmmu_val": 0.410, "mmbench_en_dev": 0.792, "pope": 0.874, "geneval": 0.80,
         "wise": 0.35, "unified_bench": 82.77, "unified_bench_uae": 82.77, "naturalbench": 0.738,
         "advqa_val": 0.342}


def task_result(task, value, stderr=None, *, source="hub", profile=None, version="1", settings=None,
                n=1000, n_total=None, model="m"):
    metric, scale = TASKS[task]
    if profile is None:     # each task's default profile, as the tasks record it (WISE's official one is "legacy")
        profile = "legacy" if task == "wise" else "official"
    if settings is None:
        settings = {"unified_bench": {"backbone_set": "unigame"}, "unified_bench_uae": {"backbone_set": "uae"},
                    "wise": {"protocol": "legacy", "judge": {"model": "gpt-4o-2024-05-13"}}}.get(task, {})
    name, rev = (HUB[task], "a1b2c3d4e5f60718") if source == "hub" else (task, "world-v1")
    return {
        "task": task, "version": version, "headline": metric,
        "metrics": {metric: {"value": value, "stderr": stderr, "n": n}}, "details": None,
        "counts": {"requests": n, "cached": 0, "failed": 0, "computed": n},
        "dataset": {"source": source, "name": name, "split": "validation", "revision": rev, "sha256": "0" * 64,
                    "n_total": n_total or n, "n_evaluated": n},
        "profile": profile, "settings": settings, "model": {"spec": model, "name": model, "fingerprint": model},
        "runners": {}, "display_scale": scale,
        "timing": {"started": 1.0, "finished": 2.0, "wall_seconds": 1.0, "runner_seconds": 1.0},
    }


def write_run(root: Path, model: str, run_id: str, results: dict, *, finished: float, tags=None,
              status="complete", spec=None, path=None) -> Path:
    """results: task -> results.json dict, or a plain value (official hub result, no stderr). model: the store
    folder; spec and path: how the run named the model and where it resolved (default: the folder's name)."""
    run = root / model / run_id
    results = {t: r if isinstance(r, dict) else task_result(t, r, model=model) for t, r in results.items()}
    manifest = {"run_id": run_id, "status": status, "started": finished - 10, "finished": finished,
                "model": {"spec": spec or model, "name": model, "fingerprint": (spec or model) + ":fp",
                          **({"path": path} if path else {})}, "tasks": list(results),
                "config": {"seed": 1234, "tags": tags or {}}, "data": {t: r["dataset"] for t, r in results.items()},
                "env": {"harness": "0.1.0"}, "tags": tags or {},
                "invocations": [{"cli": ["python", "-m", "harness", "run"], "started": finished - 10,
                                 "status": status, "finished": finished}]}
    for task, res in results.items():
        (run / task).mkdir(parents=True, exist_ok=True)
        (run / task / "results.json").write_text(json.dumps(res, indent=2))
        (run / task / "samples.jsonl").write_text("")
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run


def scaled(factor: float, base=JANUS) -> dict:
    return {t: (v + factor if t.startswith("unified") else v + factor / 100) for t, v in base.items()}


def make_store(root: Path) -> Path:
    """Measured Janus-Pro rows (base, SFT x2 seeds, UniGame), mismatching cells, a world run and noise."""
    tags = {"base_model": "Janus-Pro-7B", "seed": "0"}
    write_run(root, "janus-pro-7b", "run-base", JANUS, finished=100,
              tags={**tags, "method": "base", "step": "0"})
    for seed, bump in (("0", 1.0), ("1", 2.0)):
        for step, extra in (("8000", 0.0), ("16000", bump)):
            write_run(root, f"ckpt-sft-s{seed}-{step}", "run-1", scaled(extra), finished=200 + int(step) / 1000,
                      tags={**tags, "method": "sft", "step": step, "seed": seed, "train_run": f"sft-s{seed}"})
    for step, extra in (("8000", 2.0), ("16000", 5.0)):
        write_run(root, f"ckpt-unigame-s0-{step}", "run-1", scaled(extra), finished=300 + int(step) / 1000,
                  tags={**tags, "method": "unigame", "step": step, "train_run": "unigame-s0"})
    # one model whose cells each break one requirement, next to one good cell
    write_run(root, "other-model", "run-mixed", {
        "vqav2_val": task_result("vqav2_val", 0.70, 0.004),
        "mmmu_val": task_result("mmmu_val", 0.30, profile="lmms"),
        "pope": task_result("pope", 0.80, source="path"),
        "mmbench_en_dev": task_result("mmbench_en_dev", 0.60, version="0"),
        "advqa_val": task_result("advqa_val", 0.30, n=10, n_total=1000),
        "unified_bench": task_result("unified_bench", 70.0, settings={"backbone_set": "uae"}),
        "wise": task_result("wise", 0.30, settings={"protocol": "legacy", "judge": {"model": "qwen2.5-vl-72b"}}),
    }, finished=400)
    # the bundled model on the embedded world: world boards only
    write_run(root, "tiny-janus", "run-world", {t: task_result(t, 0.5 if scale > 1 else 50.0, 0.01,
                                                              source="shapes") for t, (_, scale) in TASKS.items()},
              finished=500)
    write_run(root, "janus-pro-7b", "run-unfinished", {"vqav2_val": 0.99}, finished=600, status="running")
    (root / "cache").mkdir()
    return root
