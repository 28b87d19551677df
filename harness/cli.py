"""Command line: python -m harness {run,tasks,models,scorers,show,score,rescore,leaderboard}."""
from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include", action="append", default=[], metavar="PATH",
                   help="import a Python file or folder that registers extra tasks, models or scorers")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def _reliability(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-failure-rate", type=float, default=None, metavar="R",
                   help="stop the run when more than this share of a runner's requests fail, judged from its first "
                        "two batches on (default: stop only when every one of them fails; 1 never stops)")
    _repair_cache(p)


def _repair_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repair-cache", action="store_true",
                   help="check the response cache in full, even shards unchanged since their last check; if a "
                        "shard is damaged, move it aside, keep the answers that can still be read and "
                        "recompute the rest (without it a damaged shard stops the command, changing nothing)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Evaluate unified multimodal models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="evaluate a model on tasks (resumes if rerun)",
                         description="Evaluate a model on tasks. Rerunning the same command resumes: finished "
                                     "requests come from the cache and are not recomputed.")
    run.add_argument("--model", default=None, help="registered name, checkpoint folder, local Hugging Face folder "
                     "or hub id (default: the bundled tiny-janus)")
    run.add_argument("--tasks", default="all", help="comma-separated task and suite names (default: all)")
    run.add_argument("--data", default=None, help="data source for every task: 'shapes' (the embedded world), "
                     "a local file or folder in the benchmark's schema, or omit for the benchmark's own data "
                     "(the bundled model defaults to 'shapes')")
    run.add_argument("--limit", type=int, default=None, help="evaluate only the first N documents of each task")
    run.add_argument("--batch-size", type=int, default=8, help="requests per model/scorer call (default 8)")
    run.add_argument("--seed", type=int, default=1234, help="run seed; per-request seeds derive from it")
    run.add_argument("--output", default="results", help="results folder (default ./results)")
    run.add_argument("--device", default=None, help="device for the model, e.g. cuda, cuda:1, cpu")
    run.add_argument("--model-args", default=None, help="JSON object of model adapter arguments")
    run.add_argument("--scorer-args", default=None,
                     help='JSON object {scorer: {arg: value}}, e.g. \'{"judge": {"model": "gpt-4o-2024-05-13"}}\'')
    run.add_argument("--profile", default=None, help="scoring profile: 'official' (default), 'lmms', or "
                     "TASK=PROFILE,... per task")
    run.add_argument("--task-args", default=None, help='JSON object {task: {option: value}}, e.g. '
                     '\'{"mmbench_en_dev": {"judge": true}}\' (`python -m harness tasks` lists the options)')
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    run.add_argument("--overwrite", action="store_true", help="recompute everything and replace cached answers")
    run.add_argument("--run-name", default=None, help="name of the run folder: a plain name, no / or .. "
                     "(default: derived from the config)")
    run.add_argument("--tag", action="append", metavar="KEY=VALUE", help="label the run (repeatable)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _reliability(run)
    run.add_argument("--threads", type=int, default=1, help="CPU threads of every evaluation process (default 1, "
                     "whatever OMP_NUM_THREADS says): the same count in every process keeps CPU results identical "
                     "across process counts; recorded in the manifest")
    run.add_argument("--leaderboard", action="store_true",
                     help="rebuild the leaderboards from the results folder afterwards (into OUTPUT/leaderboards; "
                          "on by default when `run` has no arguments)")
    _common(run)

    for name, help_ in (("tasks", "list tasks and suites"), ("models", "list registered models"),
                        ("scorers", "list registered scorers")):
        _common(sub.add_parser(name, help=help_, description=help_.capitalize() + "."))

    show = sub.add_parser("show", help="print a run's results table", description="Print a run's results table.")
    show.add_argument("run_dir", help="a run folder, e.g. results/<model>/<run-id>")
    show.add_argument("--all", action="store_true", help="every metric, not only each task's headline")
    _common(show)

    score = sub.add_parser("score", help="score stored predictions or generated images without a model",
                           description="Score text predictions (--predictions) or a folder of generated images in "
                                       "the benchmark's own layout (--images) with the task's official scoring.")
    score.add_argument("task", help="task name, e.g. vqav2_val")
    score.add_argument("--data", default=None, help="the task's documents: a local file or folder in the "
                       "benchmark's schema (annotation files without images are enough), 'shapes', or omit for "
                       "the benchmark's own data")
    score.add_argument("--predictions", default=None,
                       help='JSONL file, one {"doc_id": ..., "prediction": "..."} per line')
    score.add_argument("--images", default=None, metavar="DIR", help="generated images in the benchmark's own "
                       "layout: geneval <00000>/metadata.jsonl + samples/0000.png...; wise {prompt_id}.png; "
                       "unified_bench one reconstruction per reference image, named after it")
    score.add_argument("--profile", default=None, help="scoring profile (default: official)")
    score.add_argument("--task-args", default=None, help='JSON object {task: {option: value}}, as for run')
    score.add_argument("--scorer-args", default=None, help="JSON object {scorer: {arg: value}}, as for run")
    score.add_argument("--output", default=None, help="write the full results JSON (a run's results.json) here")
    score.add_argument("--max-failure-rate", type=float, default=None, metavar="R",
                       help="stop when more than this share of a scorer's requests fail (default: only when all "
                            "of them do; 1 never stops); missing predictions never stop it")
    score.add_argument("--results", default="results", metavar="DIR",
                       help="results store whose response cache keeps the scorers' and judges' answers (default "
                            "./results, the one `run` writes): a rerun or an interrupted score asks them again "
                            "only for what is not there")
    score.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    _repair_cache(score)
    score.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _common(score)

    rescore = sub.add_parser("rescore", help="recompute scores of a run from its stored outputs",
                             description="Recompute a run's scores from stored outputs, without the model.")
    rescore.add_argument("run_dir", help="a run folder, e.g. results/<model>/<run-id>")
    rescore.add_argument("--tasks", default=None, help="only these tasks (comma-separated)")
    rescore.add_argument("--profile", default=None, help="rescore under another scoring profile")
    rescore.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _reliability(rescore)
    _common(rescore)

    board = sub.add_parser("leaderboard", help="regenerate leaderboards from stored results",
                           description="Build leaderboards (Markdown, CSV, JSON and one static HTML page) from the "
                                       "results store, as declared in leaderboards/*.yaml.")
    board.add_argument("names", nargs="*", metavar="NAME", help="boards to build (default: all)")
    board.add_argument("--all", action="store_true", help="build every board (the default when no NAME is given)")
    board.add_argument("--results", default="results", help="results folder to read (default ./results)")
    board.add_argument("--out", default=None, help="output folder (default RESULTS/leaderboards, where `run` and "
                       "`unigame train` write them too)")
    board.add_argument("--specs", default=None, help="folder of leaderboard specs (default: this checkout's "
                       "leaderboards/)")
    board.add_argument("--include-reported", action="store_true",
                       help="add published numbers (leaderboards/reported.yaml) as rows marked reported")
    _common(board)

    imp = sub.add_parser("import-lmms", help="import an lmms-eval results file into the results store",
                         description="Convert an lmms-eval results JSON (<date>_results.json) into one run folder "
                                     "of the results store, marked as produced by lmms-eval (profile 'lmms').")
    imp.add_argument("results_json", help="lmms-eval's <date>_results.json")
    imp.add_argument("--output", default="results", help="results folder (default ./results)")
    imp.add_argument("--lmms-version", default=None, help="lmms-eval version that wrote the file, when the file "
                     "does not say (pip installs record 'unknown@unknown')")
    _common(imp)

    exp = sub.add_parser("export", help="write a run's generated images in a benchmark's own folder layout",
                         description="Write a finished run's images as the official tools expect them: geneval "
                                     "-> <out>/<00000>/metadata.jsonl + samples/0000.png...; wise -> "
                                     "<out>/{prompt_id}.png; unified_bench -> <out>/{reference stem}.png.")
    exp.add_argument("run_dir", help="a run folder, e.g. results/<model>/<run-id>")
    exp.add_argument("--task", required=True, help="the task whose images to export (geneval, wise, unified_bench...)")
    exp.add_argument("--out", default=None, help="output folder (default <run_dir>/<task>/export)")
    _common(exp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from harness import termination

    try:
        with termination.sigterm_as_interrupt():
            from harness import registry, slurm

            slurm.adopt()       # before anything reads the rank: srun's tasks carry Slurm's variables only
            registry.include(args.include)
            from harness import commands

            code = getattr(commands, f"cmd_{args.command.replace('-', '_')}")(args, argv) or 0
            from harness import distributed

            distributed.shutdown()
            return code
    except (HarnessError, OSError, KeyboardInterrupt) as e:
        code = termination.end_command(e, kept="finished work is saved", resume="rerun the same command to resume",
                                       debug=args.debug)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
