"""VQAv2 tasks end to end on small fixtures in the lmms-lab/VQAv2 schema, through the engine and the `score` CLI."""
import json

import pytest

from conftest import run_cli

from harness.api import RunConfig, evaluate
from harness.errors import DataError
from tasks.vqav2.task import VQAv2TestDev, VQAv2Val, submission_answer
from understanding_doubles import (ScriptedModel, run_task, score_cli, shapes, values, world_available,  # noqa: F401
                                   world_cache, write_jsonl, write_png, write_predictions)


def _answers(*pairs):
    out = []
    for text, k in pairs:
        out += [text] * k
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(out)]


def _row(qid, question, answers, answer_type, image="img/1.png"):
    return {"question_type": "what", "multiple_choice_answer": answers[0]["answer"] if answers else None,
            "answers": answers, "image_id": qid // 10, "answer_type": answer_type, "question_id": qid,
            "question": question, "image": image}


@pytest.fixture
def val_data(tmp_path):
    write_png(tmp_path / "img" / "1.png")
    write_png(tmp_path / "img" / "2.png", (0, 0, 200))
    rows = [_row(11, "Is it red?", _answers(("yes", 10)), "yes/no"),
            _row(12, "What colour?", _answers(("red", 2), ("blue", 8)), "other", "img/2.png"),
            _row(13, "How many?", _answers(("2", 4), ("two", 6)), "number"),
            _row(14, "What shape?", _answers(("circle", 10)), "other")]
    return write_jsonl(tmp_path / "val.jsonl", rows)


# 10x"yes" vs "Yes": official 0 (no normalisation when GT agree), lmms 1; 2x"red": 0.6; "Two." -> "2": 1.0;
# question 14 has no prediction: wrong and counted
PREDICTIONS = {"11": "Yes", "12": "red", "13": "Two."}


def test_val_end_to_end_with_exact_accuracy_and_prompt(val_data):
    model = ScriptedModel(PREDICTIONS)
    task = VQAv2Val(data=str(val_data))
    records, metrics = run_task(task, model)
    assert values(metrics)["accuracy"] == pytest.approx((0 + 0.6 + 1 + 0) / 4)
    assert metrics["details"]["n_failed"] == 1
    assert metrics["details"]["per_answer_type"]["yes/no"]["accuracy"] == 0.0
    req = model.by_ref()["12"]
    assert req.text == "What colour?\nAnswer the question using a single word or phrase."
    assert req.params == {"max_new_tokens": 16, "do_sample": False} and len(req.images) == 1
    assert len(model.requests) == 4 and task.dataset_info.n_evaluated == 4
    assert [r["question_id"] for r in records] == [11, 12, 13, 14]
    _, lmms = run_task(VQAv2Val(data=str(val_data), profile="lmms"), ScriptedModel(PREDICTIONS))
    assert values(lmms)["accuracy"] == pytest.approx((1 + 0.6 + 1 + 0) / 4)


def test_score_cli_matches_and_counts_missing(val_data, tmp_path, capsys):
    preds = write_predictions(tmp_path / "preds.jsonl", PREDICTIONS)
    proc = run_cli("score", "vqav2_val", "--data", val_data, "--predictions", preds)     # the console command
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(0.4) and out["missing_predictions"] == 1
    out = score_cli(capsys, "vqav2_val", val_data, preds, "--profile", "lmms")
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(0.65)


def test_score_cli_testdev_counts(tmp_path, capsys):
    write_png(tmp_path / "img" / "1.png")
    rows = [{**_row(q, "Q?", None, None), "answers": None} for q in (5, 6, 7)]
    data = write_jsonl(tmp_path / "testdev.jsonl", rows)
    out = score_cli(capsys, "vqav2_testdev", data, write_predictions(tmp_path / "p.jsonl", {"5": "a", "7": "b"}))
    assert out["metrics"]["answered"]["value"] == 2 and out["missing_predictions"] == 1


def test_bad_rows_name_file_row_and_column(tmp_path):
    write_png(tmp_path / "img" / "1.png")
    bad = write_jsonl(tmp_path / "bad.jsonl", [_row(1, "Q?", _answers(("a", 10)), "other"),
                                               _row(2, "Q?", [], "other")])
    with pytest.raises(DataError, match=r"bad.jsonl: row 2, column 'answers'"):
        VQAv2Val(data=str(bad)).docs()
    dup = write_jsonl(tmp_path / "dup.jsonl", [_row(1, "Q?", _answers(("a", 10)), "other")] * 2)
    with pytest.raises(DataError, match="rows 1 and 2 have the same question_id '1'"):
        VQAv2Val(data=str(dup)).docs()


def test_submission_normalisation_is_llavas():
    assert submission_answer("It's 3.5 m") == "it 's 3.5 m"
    assert submission_answer("Two dogs.") == "2 dogs"
    assert submission_answer("Yes") == "yes"
    assert submission_answer("12,000?") == "12000"


def test_testdev_writes_a_submission_for_every_test2015_question(tmp_path):
    write_png(tmp_path / "img" / "1.png")
    rows = [{**_row(q, "Q?", None, None), "answers": None, "multiple_choice_answer": None} for q in (5, 6, 7)]
    data = write_jsonl(tmp_path / "testdev.jsonl", rows)
    questions = tmp_path / "v2_OpenEnded_mscoco_test2015_questions.json"
    questions.write_text(json.dumps({"info": {}, "questions": [{"question_id": q, "image_id": 1, "question": "Q?"}
                                                               for q in (5, 6, 7, 8, 9)]}))
    task = VQAv2TestDev(data=str(data), test_questions=str(questions))
    res = evaluate(ScriptedModel({"5": "Two dogs.", "6": "YES"}), [task],
                   RunConfig(output=tmp_path / "out", progress=False, use_cache=False))
    result = res.results["vqav2_testdev"].to_dict()
    assert result["metrics"]["answered"]["value"] == 2 and result["metrics"]["failed"]["value"] == 1
    assert result["details"]["submission"]["complete"] and result["files"] == [VQAv2TestDev.SUBMISSION]
    entries = json.loads((res.run_dir / "vqav2_testdev" / VQAv2TestDev.SUBMISSION).read_text())
    assert sorted(entries, key=lambda e: e["question_id"]) == [
        {"question_id": 5, "answer": "2 dogs"}, {"question_id": 6, "answer": "yes"},
        {"question_id": 7, "answer": ""}, {"question_id": 8, "answer": ""}, {"question_id": 9, "answer": ""}]
    assert "accuracy" not in result["metrics"]


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
def test_shapes_world_end_to_end(shapes):
    task = VQAv2Val(data=shapes, limit=30)
    oracle = {d["doc_id"]: max(set(d["answers"]), key=d["answers"].count) for d in task.docs()}
    _, metrics = run_task(task, ScriptedModel(oracle))
    assert values(metrics)["accuracy"] == pytest.approx(1.0)
    assert task.dataset_info.source == "shapes"


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
def test_shapes_world_testdev_end_to_end(shapes):
    task = VQAv2TestDev(data=shapes, limit=10)
    records, metrics = run_task(task, ScriptedModel({d["doc_id"]: "Two." for d in task.docs()}))
    assert values(metrics)["answered"] == 10 and {r["answer"] for r in records} == {"2"}
    assert metrics["details"]["submission"]["complete"] is False
    assert len(json.loads(task.extra_files(records)[VQAv2TestDev.SUBMISSION])) == 10


def _official_pair(folder, subtype="val2014", prefix="v2_", annotations=True):
    """The official files vqaEval.py reads, in their real schema (hand-written: the real ones are 300 MB)."""
    qa = [(420, 42, "Is it on?", _answers(("yes", 10)), "yes/no"),
          (421, 42, "What colour is it?", _answers(("red", 1), ("blue", 9)), "other"),
          (422, 43, "How many?", _answers(("2", 5), ("two", 5)), "number"),
          (423, 43, "Where?", _answers(("left", 10)), "other")]
    folder.mkdir(parents=True, exist_ok=True)
    questions = {"info": {"description": "fixture"}, "task_type": "Open-Ended", "data_type": "mscoco",
                 "license": {"name": "x"}, "data_subtype": subtype,
                 "questions": [{"image_id": i, "question": q, "question_id": qid} for qid, i, q, _, _ in qa]}
    (folder / f"{prefix}OpenEnded_mscoco_{subtype}_questions.json").write_text(json.dumps(questions))
    if annotations:
        ann = {"info": {}, "license": {}, "data_subtype": subtype, "annotations": [
            {"question_type": "what", "multiple_choice_answer": a[0]["answer"], "answers": a, "image_id": i,
             "answer_type": t, "question_id": qid} for qid, i, _, a, t in qa]}
        (folder / f"{prefix}mscoco_{subtype}_annotations.json").write_text(json.dumps(ann))
    return folder


# the spec's worked examples (§1.4): 10 x "yes" with "Yes" -> 0 officially (no normalisation when the answers
# agree), 1 in lmms; 1 x red / 9 x blue with "red" -> 0.3; 5 x "2" / 5 x "two" with "Two." -> 1; 423 unanswered
OFFICIAL_PREDICTIONS = {"420": "Yes", "421": "red", "422": "Two."}


@pytest.mark.parametrize("task, subtype, prefix, image", [
    ("vqav2_val", "val2014", "v2_", "COCO_val2014_000000000042.jpg"),
    ("advqa_val", "val2017", "v1_", "000000000042.jpg")])
def test_official_questions_and_annotations_files(tmp_path, capsys, task, subtype, prefix, image):
    folder = _official_pair(tmp_path / "vqa", subtype, prefix)
    preds = write_predictions(tmp_path / "p.jsonl", OFFICIAL_PREDICTIONS)
    out = score_cli(capsys, task, folder, preds)                 # no image anywhere: scoring needs none
    assert out["metrics"]["accuracy"]["value"] == pytest.approx((0 + 0.3 + 1 + 0) / 4)
    assert out["missing_predictions"] == 1
    questions = next(folder.glob("*questions.json"))
    lmms = score_cli(capsys, task, questions, preds, "--profile", "lmms")   # the questions file, its pair beside
    assert lmms["metrics"]["accuracy"]["value"] == pytest.approx((1 + 0.3 + 1 + 0) / 4)
    # a run needs the pixels: COCO files named after image_id, from the option image_root
    with pytest.raises(DataError, match="image_root"):
        VQAv2Val(data=str(folder)).docs()
    write_png(tmp_path / "coco" / image)
    write_png(tmp_path / "coco" / image.replace("42", "43"), (0, 0, 200))
    model = ScriptedModel(OFFICIAL_PREDICTIONS)
    _, metrics = run_task(VQAv2Val(data=str(folder), image_root=str(tmp_path / "coco")), model)
    assert values(metrics)["accuracy"] == pytest.approx(0.325)
    assert model.by_ref()["421"].images[0].path == tmp_path / "coco" / image


def test_official_questions_file_without_annotations(tmp_path, capsys):
    folder = _official_pair(tmp_path / "vqa", annotations=False)
    with pytest.raises(DataError, match="no annotations file beside it"):
        VQAv2Val(data=str(folder / "v2_OpenEnded_mscoco_val2014_questions.json")).docs()
    # test-dev has no public answers: the questions file alone is its official data
    preds = write_predictions(tmp_path / "p.jsonl", OFFICIAL_PREDICTIONS)
    out = score_cli(capsys, "vqav2_testdev", folder, preds)
    assert out["metrics"]["answered"]["value"] == 3 and out["missing_predictions"] == 1
