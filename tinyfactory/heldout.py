"""The bundled model's held-out check: our own tasks on `--data shapes`, against the targets it must clear.

The world's evaluation data are generated from a different random stream than the pretraining data, so these are
held-out scores, computed by the same task code and official scoring rules as any evaluation run.

    python -m tinyfactory.heldout [folder] [--output DIR] [--limit N]

Targets (a model that learnt the world, with room left above it for post-training to show differences):
  * VQAv2-style accuracy >= 70, and every question type's accuracy >= 1.5x its chance level (the probability
    that a uniform guess among the answers its question family takes is right; the guess's VQA score, higher
    because minority answers earn partial credit, is reported beside it);
  * POPE F1 >= 70 with a predicted yes-ratio in [0.3, 0.7] on every split;
  * GenEval-style overall >= 0.25;
  * UnifiedBench scene similarity >= 2x the mismatched-caption control;
  * below the ceiling: VQAv2-style accuracy < 98, GenEval-style overall < 0.95.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

TASKS = ("vqav2_val", "pope", "geneval", "unified_bench")
POPE_SPLITS = ("random", "popular", "adversarial")


def question_type_chance(docs: list[dict], profile: str | None) -> dict[str, dict[str, float]]:
    """Question type -> chance levels (0-1) of a uniform guess among the answers of each question's world family
    (every majority answer the family takes in the data): `chance`, the probability that the guess is the majority
    answer, and `guess_score`, the guess's expected VQA accuracy (higher: minority answers earn partial credit)."""
    from harness.world.questions import match_question
    from tasks.vqav2 import scoring

    family = [match_question(d["question"])[0] for d in docs]
    answer_sets = defaultdict(set)
    for d, fam in zip(docs, family):
        answer_sets[fam].add(Counter(d["answers"]).most_common(1)[0][0])
    by_type = defaultdict(list)
    for d, fam in zip(docs, family):
        options = sorted(answer_sets[fam])
        score = sum(scoring.vqa_score_details(a, d["answers"], profile)["accuracy"] for a in options)
        by_type[d["question_type"]].append((1 / len(options), score / len(options)))
    return {qtype: {"chance": sum(c for c, _ in v) / len(v), "guess_score": sum(g for _, g in v) / len(v)}
            for qtype, v in by_type.items()}


def summarise(results: dict, chance: dict[str, dict[str, float]]) -> dict:
    """The figures the targets are about, from the tasks' results ({task: TaskResult})."""
    def value(task: str, metric: str) -> float:
        return results[task].metrics[metric].value

    per_type = results["vqav2_val"].details["per_question_type"]
    types = {}
    for qtype, level in sorted(chance.items()):
        if qtype not in per_type:       # a --limit can leave a type out
            continue
        acc = per_type[qtype]["percent"] / 100
        types[qtype] = {"accuracy": round(acc, 3), "chance": round(level["chance"], 3),
                        "guess_score": round(level["guess_score"], 3), "n": per_type[qtype]["n"],
                        "x_chance": round(acc / level["chance"], 2)}
    pope = results["pope"].metrics
    return {
        "vqav2": {"accuracy": round(100 * value("vqav2_val", "accuracy"), 2),
                  "n": results["vqav2_val"].metrics["accuracy"].n,
                  "question_types": types, "min_x_chance": min(t["x_chance"] for t in types.values())},
        # F1 is undefined (None) when the model never answers yes: no true or false positives
        "pope": {s: {"f1": None if pope[f"{s}_f1"].value is None else round(100 * pope[f"{s}_f1"].value, 2),
                     "yes_ratio": round(pope[f"{s}_yes_ratio"].value, 3)}
                 for s in POPE_SPLITS if f"{s}_f1" in pope},
        "geneval": {"overall": round(value("geneval", "overall"), 3)},
        "unified_bench": {"overall": round(value("unified_bench", "overall"), 4),
                          "mismatched": round(value("unified_bench", "mismatched_overall"), 4)},
    }


def failed_targets(s: dict) -> list[str]:
    """The targets a summary misses (empty when all are met)."""
    misses = []
    if s["vqav2"]["accuracy"] < 70:
        misses.append(f"VQAv2-style accuracy {s['vqav2']['accuracy']} < 70")
    for qtype, t in s["vqav2"]["question_types"].items():
        if t["x_chance"] < 1.5:
            misses.append(f"question type {qtype!r} at {t['x_chance']}x chance < 1.5x")
    for split, p in s["pope"].items():
        if p["f1"] is None:
            misses.append(f"POPE {split} F1 undefined: the model never answered yes")
        elif p["f1"] < 70:
            misses.append(f"POPE {split} F1 {p['f1']} < 70")
        if not 0.3 <= p["yes_ratio"] <= 0.7:
            misses.append(f"POPE {split} yes-ratio {p['yes_ratio']} outside [0.3, 0.7]")
    if s["geneval"]["overall"] < 0.25:
        misses.append(f"GenEval-style overall {s['geneval']['overall']} < 0.25")
    ub = s["unified_bench"]
    if ub["overall"] < 2 * ub["mismatched"]:
        misses.append(f"UnifiedBench {ub['overall']} < 2x mismatched {ub['mismatched']}")
    if s["vqav2"]["accuracy"] >= 98 or s["geneval"]["overall"] >= 0.95:
        misses.append("at the ceiling: no room left for post-training to show differences")
    return misses


def evaluate(folder: str, output: str | Path | None = None, limit: int | None = None,
             progress: bool = False) -> dict:
    """Run the target tasks on `folder` with --data shapes; returns the summary plus the missed targets."""
    from harness.api import RunConfig, build_tasks
    from harness.api import evaluate as run_tasks
    from harness.models import resolve_model

    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(output=output or tmp, data="shapes", limit=limit, batch_size=32, progress=progress)
        tasks = build_tasks(list(TASKS), config)
        vqa = next(t for t in tasks if t.name == "vqav2_val")
        chance = question_type_chance(vqa.load()[0], vqa.profile)     # over the whole set, not the --limit
        run = run_tasks(resolve_model(str(folder)), tasks, config)
        summary = summarise(run.results, chance)
    summary["missed_targets"] = failed_targets(summary)
    return summary


def main(argv=None) -> int:
    from harness.models.checkpoints import TINY_DIR

    ap = argparse.ArgumentParser(prog="python -m tinyfactory.heldout", description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(TINY_DIR))
    ap.add_argument("--output", default=None, help="results folder to keep (default: a temporary one)")
    ap.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    a = ap.parse_args(argv)
    summary = evaluate(a.folder, a.output, a.limit, progress=True)
    print(json.dumps(summary, indent=1))
    return 1 if summary["missed_targets"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
