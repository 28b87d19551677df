"""`harness score TASK --images DIR`: a folder written by `python -m harness export` (the benchmark's own layout)
scored with the task's own scorers reproduces the run's metrics exactly, on the embedded world (world detector,
rule judge, scene similarity); the layouts' errors are one line."""
import json

import pytest
from PIL import Image as PILImage

from generation_doubles import WorldRenderDouble, run_engine
from harness.cli import main
from tasks.geneval.task import GenEval
from tasks.unified_bench.task import UnifiedBench
from tasks.wise.task import WISE
from tasks.world import build
from understanding_doubles import shapes, world_cache  # noqa: F401

N = 8
TASK_ARGS = {"geneval": {"world_n": N}, "wise": {"world_n": N}, "unified_bench": {"world_n": N}}


@pytest.fixture
def run_dir(shapes, tmp_path):
    """One run of the three image tasks: most images right, some blank, some failed (no file in the export). WISE
    gets no failure: one would refuse its Overall, as the official Calculate.py does."""
    wise_ids = [str(r["prompt_id"]) for r in build("wise", n=N)]
    model = WorldRenderDouble(geneval=build("geneval", n=N), wise=build("wise", n=N), fail={"00002/1", "4"},
                              blank={"00001/0", "00005/1", wise_ids[0], wise_ids[5], "2", "6"})
    tasks = [GenEval(data=shapes, world_n=N, n_images=2), WISE(data=shapes, world_n=N),
             UnifiedBench(data=shapes, world_n=N)]
    return run_engine(tmp_path, tasks, model).run_dir


def _score(capsys, task, folder, out, *extra):
    capsys.readouterr()
    code = main(["score", task, "--data", "shapes", "--images", str(folder), "--output", str(out),
                 "--task-args", json.dumps({task: TASK_ARGS[task]}), "--results", str(out.parent / "results"),
                 *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "image folder.generate" in captured.err and "model." not in captured.err
    return json.loads(out.read_text())


@pytest.mark.parametrize("task", ["geneval", "wise", "unified_bench"])
def test_exported_folder_reproduces_the_runs_metrics(run_dir, tmp_path, capsys, task):
    run = json.loads((run_dir / task / "results.json").read_text())
    folder = tmp_path / f"{task}_images"
    assert main(["export", str(run_dir), "--task", task, "--out", str(folder)]) == 0
    res = _score(capsys, task, folder, tmp_path / f"{task}.json")
    assert res["metrics"] == run["metrics"]
    assert 0 < run["metrics"][run["headline"]]["value"] < (100 if task == "unified_bench" else 1)  # not trivial
    assert res["details"]["n_failed"] == run["details"]["n_failed"] == (0 if task == "wise" else 1)
    assert res["dataset"] == run["dataset"] and res["task"] == task and res["profile"] == run["profile"]
    model = res["model"]
    assert model["spec"] == f"images:{folder}" and model["folder"] == str(folder) and len(model["sha256"]) == 64
    assert model["fingerprint"] == f"images:{model['sha256']}"
    assert res["missing_predictions"] == (0 if task == "wise" else 1)
    assert res["runners"] == run["runners"]            # the same (world) scorers as the run


def test_geneval_failure_mode_exclude_scores_only_the_images_present_as_evaluate_images_does(run_dir, tmp_path,
                                                                                            capsys):
    """The export lacks the failed 00002/1: by default it counts as incorrect (as in the run); with failure_mode
    exclude (or profile exclude_failures) its tag's accuracy is over the images present, as GenEval's
    evaluate_images.py scores the files it finds."""
    folder = tmp_path / "g"
    main(["export", str(run_dir), "--task", "geneval", "--out", str(folder)])
    assert not (folder / "00002" / "samples" / "0001.png").exists()
    default = _score(capsys, "geneval", folder, tmp_path / "default.json")
    counts = default["details"]["per_tag_counts"]
    tag = build("geneval", n=N)[2]["tag"]
    official = {t: c["correct"] / (c["total"] - (t == tag)) for t, c in counts.items()}
    assert official[tag] != counts[tag]["correct"] / counts[tag]["total"]       # the rule matters here
    TASK_ARGS["geneval"]["failure_mode"] = "exclude"
    try:
        excluded = _score(capsys, "geneval", folder, tmp_path / "exclude.json")
    finally:
        del TASK_ARGS["geneval"]["failure_mode"]
    assert excluded["metrics"]["overall"]["value"] == pytest.approx(sum(official.values()) / len(official))
    assert excluded["metrics"][tag]["value"] == pytest.approx(official[tag])
    assert excluded["details"]["n_images"] == default["details"]["n_images"] - 1
    assert excluded["details"]["n_failed"] == 1 and excluded["details"]["failure_mode"] == "exclude"
    assert "left out" in excluded["settings"]["failure_rule"]
    by_profile = _score(capsys, "geneval", folder, tmp_path / "profile.json", "--profile", "exclude_failures")
    assert by_profile["metrics"] == excluded["metrics"] and by_profile["profile"] == "exclude_failures"


def test_the_folder_hash_follows_the_files(run_dir, tmp_path, capsys):
    folder = tmp_path / "wise_images"
    main(["export", str(run_dir), "--task", "wise", "--out", str(folder)])
    first = _score(capsys, "wise", folder, tmp_path / "a.json")["model"]["sha256"]
    victim = sorted(folder.glob("*.png"))[0]
    PILImage.new("RGB", (64, 64), (255, 255, 255)).save(victim)
    second = _score(capsys, "wise", folder, tmp_path / "b.json")
    assert second["model"]["sha256"] != first and second["metrics"] != {}


def test_geneval_layout_errors(run_dir, tmp_path, capsys):
    folder = tmp_path / "g"
    main(["export", str(run_dir), "--task", "geneval", "--out", str(folder)])
    (folder / "00003" / "metadata.jsonl").write_text(json.dumps(build("geneval", n=N)[4]) + "\n")
    capsys.readouterr()
    assert main(["score", "geneval", "--data", "shapes", "--images", str(folder),
                 "--task-args", json.dumps({"geneval": TASK_ARGS["geneval"]})]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "00003/metadata.jsonl is not prompt 3" in err
    (folder / "00003" / "metadata.jsonl").write_text(json.dumps(build("geneval", n=N)[3]) + "\n")
    assert main(["score", "geneval", "--data", "shapes", "--images", str(folder), "--task-args",
                 json.dumps({"geneval": {"world_n": N, "n_images": 1}})]) == 2
    assert "more than n_images=1" in capsys.readouterr().err


def test_score_needs_exactly_one_source_and_an_image_task(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    assert main(["score", "pope", "--data", "shapes", "--images", str(tmp_path / "imgs")]) == 2
    assert "does not score image folders" in capsys.readouterr().err
    assert main(["score", "wise", "--data", "shapes"]) == 2
    assert "--predictions FILE" in capsys.readouterr().err
    assert main(["score", "wise", "--data", "shapes", "--images", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_unified_bench_pairs_reconstructions_as_score_i2i(run_dir, tmp_path, capsys):
    """UAE's Score_i2i.py pairing: the same name, else the same stem, else recon_<stem>."""
    run = json.loads((run_dir / "unified_bench" / "results.json").read_text())
    folder = tmp_path / "u"
    main(["export", str(run_dir), "--task", "unified_bench", "--out", str(folder)])
    for p in sorted(folder.glob("*.png"))[::2]:
        p.rename(folder / f"recon_{p.name}")
    assert _score(capsys, "unified_bench", folder, tmp_path / "u.json")["metrics"] == run["metrics"]
    victim = sorted(folder.glob("recon_*.png"))[0]
    stem = victim.stem[len("recon_"):]
    PILImage.open(victim).save(folder / f"{stem}.bmp")
    PILImage.open(victim).save(folder / f"{stem}.webp", lossless=True)
    capsys.readouterr()
    assert main(["score", "unified_bench", "--data", "shapes", "--images", str(folder),
                 "--task-args", json.dumps({"unified_bench": TASK_ARGS["unified_bench"]})]) == 2
    assert f"{stem}.bmp, {stem}.webp could all be the reconstruction of {stem}.png" in capsys.readouterr().err


def test_scorer_answers_are_kept_in_the_results_store_and_reused(run_dir, tmp_path, capsys):
    """A rerun (or an interrupted score) asks the scorers only for what the results store's cache lacks; the
    stored outputs themselves are never cached."""
    import sqlite3

    folder, results = tmp_path / "u", tmp_path / "results"
    main(["export", str(run_dir), "--task", "unified_bench", "--out", str(folder)])
    args = ["score", "unified_bench", "--data", "shapes", "--images", str(folder), "--no-progress",
            "--task-args", json.dumps({"unified_bench": TASK_ARGS["unified_bench"]})]
    outcomes = []
    for extra in (["--results", str(results)], ["--results", str(results)], ["--no-cache"]):
        capsys.readouterr()
        assert main([*args, *extra]) == 0
        captured = capsys.readouterr()
        outcomes.append((json.loads(captured.out)["metrics"], captured.err.strip().splitlines()[-1]))
    (first, said_first), (second, said_second), (uncached, said_uncached) = outcomes
    assert first == second == uncached
    n = int(said_first.split(",")[0].split()[-1])
    assert n >= N - 1                           # at least one comparison per reconstruction in the export
    assert said_first == f"scorer requests: {n}, 0 of them answered from the response cache in {results / 'cache'}"
    assert said_second == f"scorer requests: {n}, {n} of them answered from the response cache in {results / 'cache'}"
    assert said_uncached == f"scorer requests: {n}, 0 of them answered from no cache (--no-cache)"
    [shard] = (results / "cache").glob("responses.rank*.sqlite")
    with sqlite3.connect(shard) as conn:
        targets = [t for (t,) in conn.execute("SELECT target FROM responses")]
    assert targets and "model" not in targets and all(t.startswith("scorer:") for t in targets)
