"""Post-training methods side by side on the embedded world (not a test): several seeds per method, one table.

Trains each method with `python -m unigame train` on `--data shapes` (the same data, loop, steps and learning rates
for every method), evaluates the base model and every final checkpoint on the world's VQAv2-style, NaturalBench,
AdVQA-style and UnifiedBench tasks, and prints mean ± standard deviation over seeds, with the base row first.
Everything lands in one results store, so `python -m harness leaderboard post_training_world --results OUT/results`
shows the same runs as a leaderboard.

    python bench/methods_world.py [--model tiny-janus] [--methods sft,noise,adv_embed,unigame,reca]
                                  [--seeds 0,1,2] [--steps 300] [--jobs 2] [--out runs/methods-world]
                                  [--eval TASKS] [--table-only] [-- extra unigame train flags]

Several models can share one --out (runs go to OUT/<model>/<method>-s<seed>, results to OUT/results); the table
shows --model's rows.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TASKS = {"vqav2_val": "accuracy", "naturalbench": "g_acc", "advqa_val": "accuracy", "unified_bench": "overall"}
LABELS = {"vqav2_val": "VQAv2-style acc", "naturalbench": "NaturalBench G-Acc", "advqa_val": "AdVQA-style acc",
          "unified_bench": "UnifiedBench"}


def train(method: str, seed: int, args, extra: list[str], eval_base: bool) -> subprocess.CompletedProcess:
    out = Path(args.out)
    cmd = [sys.executable, "-m", "unigame", "train", "--model", args.model, "--method", method, "--seed", str(seed),
           "--steps", str(args.steps), "--data", "shapes", "--eval", args.eval, "--eval-data", "shapes",
           "--output", str(out / args.model / f"{method}-s{seed}"), "--results", str(out / "results"),
           "--leaderboards", str(out / "leaderboards"), "--no-plots", *extra]
    if not eval_base:
        cmd.append("--no-eval-base")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    print(f"{args.model} {method} seed {seed}: exit {proc.returncode}", flush=True)
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
    return proc


def collect(results: Path, model: str) -> dict[tuple[str, int], dict[str, float]]:
    """(method, seed) -> {task: headline value} from the final checkpoint of each of `model`'s runs (and its base
    row)."""
    from harness.results import load_run

    rows: dict[tuple[str, int], dict] = {}
    for manifest_path in results.glob("*/*/manifest.json"):
        manifest, run = load_run(manifest_path.parent)
        tags = manifest.tags
        # "method" is the run's label (it names non-default hyper-parameters); the bare method is in the config
        method = (tags.get("hyper_parameters") or {}).get("method", tags.get("method"))
        seed, step = int(tags.get("seed", 0)), int(tags.get("step", 0))
        if method is None or tags.get("base_model", model) != model:
            continue
        key = (method, 0 if method == "base" else seed)
        values = {}
        for task, metric in TASKS.items():
            if task in run:
                values[task] = run[task].display_value(metric)
        if key not in rows or step > rows[key]["_step"]:
            rows[key] = {"_step": step, **values}
    return rows


def table(rows: dict, methods: list[str]) -> str:
    head = "| method | seeds | " + " | ".join(LABELS[t] for t in TASKS) + " |"
    lines = [head, "|" + "---|" * (len(TASKS) + 2)]
    for method in ["base", *methods]:
        runs = [v for (m, _s), v in sorted(rows.items()) if m == method]
        cells = []
        for task in TASKS:
            vals = [r[task] for r in runs if r.get(task) is not None]
            if not vals:
                cells.append("-")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:.2f}")
            else:
                cells.append(f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}")
        lines.append(f"| {method} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-janus", help="the model every method post-trains")
    ap.add_argument("--methods", default="sft,noise,adv_embed,unigame,reca")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2, help="training runs at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--out", default="runs/methods-world")
    ap.add_argument("--eval", default=",".join(TASKS),
                    help="tasks or suites each final checkpoint is evaluated on (the table shows the four above)")
    ap.add_argument("--table-only", action="store_true", help="print the table from --out's results; train nothing")
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    methods = args.methods.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.table_only:
        print(table(collect(Path(args.out) / "results", args.model), methods))
        return
    jobs = [(m, s) for s in seeds for m in methods]
    # the base model is evaluated once, by the first run; the others share its cached answers
    train(jobs[0][0], jobs[0][1], args, extra, eval_base=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda ms: train(ms[0], ms[1], args, extra, eval_base=False), jobs[1:]))
    print(f"\n{args.steps} steps per run, flags: {' '.join(extra) or '(defaults)'}\n")
    print(table(collect(Path(args.out) / "results", args.model), methods))


if __name__ == "__main__":
    main()
