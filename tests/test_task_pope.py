"""POPE end to end on the official JSON-lines schema and the lmms-lab/POPE schema; the real split files' loader."""
import json
import os
from pathlib import Path

import pytest

from harness.errors import DataError
from harness.types import Response
from tasks.pope.task import POPE
from understanding_doubles import (ScriptedModel, png, run_task, score_cli, shapes, values,  # noqa: F401
                                   world_available, world_cache, write_jsonl, write_png, write_predictions)

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data" / "pope"


def _official(path: Path, labels, image="COCO_val2014_000000000001.jpg"):
    """An official-format file: JSON lines despite the .json name."""
    rows = [{"question_id": i, "image": image, "text": f"Is there a thing {i} in the image?", "label": label}
            for i, label in enumerate(labels, 1)]
    return write_jsonl(path, rows)


@pytest.fixture
def official_dir(tmp_path):
    # LLaVA's layout: the question files in pope/coco/, the COCO images in pope/val2014/
    write_png(tmp_path / "pope" / "val2014" / "COCO_val2014_000000000001.jpg")
    _official(tmp_path / "pope" / "coco" / "coco_pope_random.json", ["yes", "yes", "yes", "no", "no"])
    _official(tmp_path / "pope" / "coco" / "coco_pope_adversarial.json", ["yes", "no", "yes", "no"])
    return tmp_path / "pope" / "coco"


# random: the spec's 5-sample example (official: F1 2/3; lmms: 0.5). adversarial: "Yes, there is." -> yes,
# "No" -> no, "There is not a dog." -> no, and a missing answer (label no -> counted as the wrong "yes"):
# official TP=FP=TN=FN=1 -> F1 0.5; lmms: only "no" is exact -> TP 0, FP 1 (the missing one) -> F1 0.
PREDICTIONS = {"random:1": "Yes", "random:2": "no", "random:3": "Yes.", "random:4": "No", "random:5": "yes",
               "adversarial:1": "Yes, there is.", "adversarial:2": "No", "adversarial:3": "There is not a dog."}


def test_official_files_end_to_end(official_dir):
    model = ScriptedModel(PREDICTIONS)
    task = POPE(data=str(official_dir))
    records, metrics = run_task(task, model)
    v = values(metrics)
    assert v["random_accuracy"] == pytest.approx(0.6) and v["random_precision"] == pytest.approx(2 / 3)
    assert v["random_f1"] == pytest.approx(2 / 3) and v["random_yes_ratio"] == pytest.approx(0.6)
    assert v["adversarial_f1"] == pytest.approx(0.5) and v["adversarial_yes_ratio"] == pytest.approx(0.5)
    assert v["f1"] == pytest.approx((2 / 3 + 0.5) / 2) and metrics["f1"].stderr is not None
    assert metrics["details"]["n_failed"] == 1
    assert {r["category"] for r in records} == {"random", "adversarial"}
    req = model.by_ref()["random:1"]
    assert req.text == "Is there a thing 1 in the image?\nAnswer the question using a single word or phrase."
    assert req.params == {"max_new_tokens": 128, "do_sample": False}
    assert task.dataset_info.extra["doc_id"] == "{category}:{question_id}"


def test_lmms_profile_exact_match(official_dir):
    _, metrics = run_task(POPE(data=str(official_dir), profile="lmms"), ScriptedModel(PREDICTIONS))
    v = values(metrics)
    assert v["random_accuracy"] == pytest.approx(0.4) and v["random_f1"] == pytest.approx(0.5)
    assert v["adversarial_accuracy"] == pytest.approx(0.25) and v["adversarial_f1"] == 0
    assert v["f1"] == pytest.approx(0.25)
    assert metrics["details"]["pooled"]["lmms_reported_yes_ratio"] == pytest.approx(5 / 9)


def test_score_cli_single_file_keeps_plain_ids(official_dir, tmp_path, capsys):
    preds = write_predictions(tmp_path / "p.jsonl", {k.split(":")[1]: v for k, v in PREDICTIONS.items()
                                                     if k.startswith("random")})
    out = score_cli(capsys, "pope", official_dir / "coco_pope_random.json", preds)
    assert out["metrics"]["f1"]["value"] == pytest.approx(2 / 3) and out["missing_predictions"] == 0
    preds = write_predictions(tmp_path / "q.jsonl", PREDICTIONS)
    out = score_cli(capsys, "pope", official_dir, preds)
    assert out["metrics"]["f1"]["value"] == pytest.approx(7 / 12) and out["missing_predictions"] == 1


def test_hf_schema_file_and_bad_rows(tmp_path):
    img = write_png(tmp_path / "im.png")
    rows = [{"id": str(i), "question_id": str(i), "question": "Is there a dog?", "answer": a, "image_source": "x",
             "image": img, "category": "popular"} for i, a in enumerate(["yes", "no"])]
    data = write_jsonl(tmp_path / "pope.jsonl", rows)
    records, metrics = run_task(POPE(data=str(data)), ScriptedModel({"0": "Yes", "1": "No"}))
    assert values(metrics)["popular_f1"] == 1.0 and values(metrics)["f1"] == 1.0
    bad = write_jsonl(tmp_path / "bad.jsonl", rows + [{**rows[0], "question_id": "9", "answer": "maybe"}])
    with pytest.raises(DataError, match=r"bad.jsonl: row 3, column 'answer'"):
        POPE(data=str(bad)).docs()
    missing = _official(tmp_path / "o" / "coco_pope_random.json", ["yes"], image="COCO_val2014_0.jpg")
    with pytest.raises(DataError, match=r"coco_pope_random.json: row 1, column 'image'.*COCO_val2014_0.jpg"):
        POPE(data=str(missing)).docs()


@pytest.mark.skipif(not REF.exists(), reason="shared/reference-data/pope not found next to the repository")
def test_real_official_split_files(tmp_path):
    folder = tmp_path / "coco"
    folder.mkdir()
    (tmp_path / "val2014").mkdir()
    one = tmp_path / "one.png"
    one.write_bytes(png())
    for split in ("random", "popular", "adversarial"):
        (folder / f"coco_pope_{split}.json").symlink_to(REF / f"coco_pope_{split}.json")
        for line in (REF / f"coco_pope_{split}.json").read_text().splitlines():
            name = tmp_path / "val2014" / json.loads(line)["image"]
            if not name.exists():
                os.symlink(one, name)
    task = POPE(data=str(folder))
    docs = task.docs()
    assert len(docs) == 9000
    for split in ("random", "popular", "adversarial"):
        mine = [d for d in docs if d["category"] == split]
        assert len(mine) == 3000 and sum(d["label"] == "yes" for d in mine) == 1500
    assert docs[0]["doc_id"] == "adversarial:1"
    perfect = [task.process(d, {"answer": [Response(text="Yes" if d["label"] == "yes" else "No")]})
               for d in docs if d["category"] == "random"][:600]
    assert values(task.aggregate(perfect))["f1"] == 1.0


@pytest.mark.skipif(not REF.exists(), reason="shared/reference-data/pope not found next to the repository")
def test_score_the_real_official_files_without_images(tmp_path, capsys):
    """POPE's own question files, no COCO image anywhere: `score` reads them; `run` refuses them."""
    folder = tmp_path / "coco"
    folder.mkdir()
    preds = {}
    for split in ("random", "popular", "adversarial"):
        (folder / f"coco_pope_{split}.json").symlink_to(REF / f"coco_pope_{split}.json")
        for line in (REF / f"coco_pope_{split}.json").read_text().splitlines():
            row = json.loads(line)
            # random: every answer right; popular: always "Yes" (P 1/2, R 1 -> F1 2/3); adversarial: "I don't think
            # so." has no "No"/"not"/"no" token, so the official heuristic reads yes (F1 2/3 again)
            preds[f"{split}:{row['question_id']}"] = {"random": row["label"].capitalize(), "popular": "Yes",
                                                      "adversarial": "I don't think so."}[split]
    out = score_cli(capsys, "pope", folder, write_predictions(tmp_path / "p.jsonl", preds))
    m = {k: v["value"] for k, v in out["metrics"].items()}
    assert m["random_f1"] == 1.0 and m["popular_f1"] == pytest.approx(2 / 3) and m["popular_yes_ratio"] == 1.0
    assert m["adversarial_f1"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(7 / 9)
    assert out["missing_predictions"] == 0
    with pytest.raises(DataError, match=r"column 'image'.*COCO_val2014_000000310196.jpg not found"):
        POPE(data=str(folder / "coco_pope_random.json")).docs()


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
def test_shapes_world_end_to_end(shapes):
    task = POPE(data=shapes)
    oracle = {d["doc_id"]: d["label"].capitalize() for d in task.docs()}
    _, metrics = run_task(task, ScriptedModel(oracle))
    v = values(metrics)
    assert v["f1"] == 1.0 and {"random_f1", "popular_f1", "adversarial_f1"} <= set(v)


def test_a_model_that_never_says_yes_has_an_undefined_f1_and_a_complete_run(official_dir, tmp_path, capsys):
    # the official evaluate.py raises ZeroDivisionError on such a split: the headline is undefined, which is a
    # measurement of the model (not a failed run), so the command succeeds and says why there is no F1
    from harness.leaderboard.cells import from_results
    from harness.report import results_rows
    from harness.results import read_task_result

    preds = write_predictions(tmp_path / "p.jsonl", {k: "No" for k in PREDICTIONS} | {"adversarial:4": "No"})
    out = score_cli(capsys, "pope", official_dir, preds, "--output", tmp_path / "scored.json")
    assert out["metrics"]["f1"]["value"] is None and out["metrics"]["random_accuracy"]["value"] == pytest.approx(0.4)
    assert out["metrics"]["random_yes_ratio"]["value"] == 0
    res = read_task_result(tmp_path / "scored.json")
    why = res.details["f1_undefined"]
    assert "adversarial: no 'yes' prediction" in why and "random: no 'yes' prediction" in why
    assert results_rows({"pope": res}, full=False)[0][2] == "undefined"
    col = type("Col", (), {"task": "pope", "metric": None, "scale": 100.0})()
    assert "pope f1 is undefined for this model's answers" in from_results(res, col, "run").notes[0]
    # the trainer's per-checkpoint line and its closing base-vs-step table say it too, not a bare dash
    from harness.report import comparison
    from unigame.evaluation import summary

    table = comparison({"base model": {"pope": res}, "step 2": {"pope": res}})
    assert table.splitlines()[2].split()[2:4] == ["undefined", "undefined"]
    assert f"pope f1 of base model is undefined: {why}" in table
    assert summary(type("Run", (), {"results": {"pope": res}})()) == "pope undefined"


def test_an_undefined_f1_with_failed_requests_is_still_a_failure():
    from harness.health import headline_problems
    from harness.results import Counts, Metric, TaskResult

    res = TaskResult("pope", {"f1": Metric(None)}, headline="f1", counts=Counts(requests=5, failed=3),
                     details={"f1_undefined": "random: no 'yes' prediction"})
    failures, notes = headline_problems({"pope": res})
    assert failures == ["pope: headline 'f1' could not be computed (3 of 5 requests failed)"] and not notes
    res.counts.failed = 0
    failures, notes = headline_problems({"pope": res})
    assert not failures and "undefined for these answers" in notes[0]
