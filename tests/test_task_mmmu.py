"""MMMU tasks end to end on fixtures in the lmms-lab/MMMU schema; the validation answer key's composition."""
import json
from pathlib import Path

import pytest

from harness.errors import DataError
from harness.types import Response
from tasks.mmmu.task import MMMUDev, MMMUVal
from understanding_doubles import (ScriptedModel, run_task, score_cli, shapes, values, world_available,  # noqa: F401
                                   world_cache, write_jsonl, write_png, write_predictions)

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data"
ORGANELLES = ["mitochondria", "nucleus", "ribosome", "golgi apparatus"]


def _row(id_, question, options, answer, qtype="multiple-choice", images=("img/a.png",)):
    row = {"id": id_, "question": question, "options": str(options), "explanation": "", "img_type": "['Diagrams']",
           "answer": answer, "topic_difficulty": "Easy", "question_type": qtype, "subfield": "x"}
    for k in range(1, 8):
        row[f"image_{k}"] = images[k - 1] if k <= len(images) else None
    return row


@pytest.fixture
def data(tmp_path):
    write_png(tmp_path / "img" / "a.png")
    write_png(tmp_path / "img" / "b.png", (0, 90, 0))
    rows = [
        _row("validation_Art_1", "<image 1> Which organelle makes proteins?", ORGANELLES, "C"),
        _row("validation_Art_2", "Which organelle? <image 1>", ORGANELLES, "B"),
        _row("validation_Art_3", "Which one? <image 1>", ["x", "y", "z"], "C"),
        _row("validation_Math_1", "What is 6*5? <image 1>", [], "30", "open"),
        _row("validation_Math_2", "24/7 = ? <image 1>", [], "['24/7', '3.429']", "open"),
        _row("validation_Physics_1", "Which is heavier, <image 1> or the other?", ["<image 2>", "<image 1>"], "A",
             images=("img/a.png", "img/b.png")),
        _row("validation_Accounting_1", "Pick one. <image 1>", ORGANELLES, "D"),
    ]
    return write_jsonl(tmp_path / "mmmu.jsonl", rows)


# Physics_1 has no prediction (wrong, counted); Art_2 and Art_3 do not parse officially -> seeded random draws in
# document order: Random(42) gives A for Art_2 (gold B) and then A for Art_3 (gold C). Under lmms "DNA " parses
# as A, so Art_3's draw is the first one: C (correct).
PREDICTIONS = {"validation_Art_1": "The answer is (C).", "validation_Art_2": "The answer is DNA.",
               "validation_Art_3": "I do not know", "validation_Math_1": "The answer is 30.",
               "validation_Math_2": "3.43", "validation_Accounting_1": "I think A is wrong, the answer is C"}


def test_end_to_end_official_with_seeded_fallback_in_document_order(data):
    model = ScriptedModel(PREDICTIONS)
    task = MMMUVal(data=str(data))
    records, metrics = run_task(task, model)
    v = values(metrics)
    assert v["accuracy"] == pytest.approx(3 / 7)
    assert v["art_and_design"] == pytest.approx(1 / 3) and v["science"] == pytest.approx(2 / 3)
    assert v["business"] == 0.0
    d = metrics["details"]
    assert (d["n_random_fallback"], d["n_random_fallback_correct"], d["n_failed"]) == (2, 0, 1)
    assert (d["n_multiple_choice"], d["n_open"]) == (5, 2) and d["rounded"] == round(3 / 7, 3)
    assert d["per_subject"]["Math"] == {"num": 2, "acc": 1.0}
    # every referenced image, in image_k order; the official prompt
    req = model.by_ref()["validation_Physics_1"]
    assert len(req.images) == 2 and req.params == {"max_new_tokens": 128, "do_sample": False}
    assert model.by_ref()["validation_Art_1"].text == (
        "<image 1> Which organelle makes proteins?\n(A) mitochondria\n(B) nucleus\n(C) ribosome\n"
        "(D) golgi apparatus\n\nAnswer with the option's letter from the given choices directly.")
    assert model.by_ref()["validation_Math_1"].text.endswith("? <image 1>\nAnswer the question using a single "
                                                             "word or phrase.")
    # process() never draws: the same records scored in another order (another process count) draw the same
    assert all(r["parsed_pred"] is None for r in records if r["needs_random_fallback"])


def test_results_do_not_depend_on_the_number_of_processes(data):
    one = run_task(MMMUVal(data=str(data)), ScriptedModel(PREDICTIONS))
    three = run_task(MMMUVal(data=str(data)), ScriptedModel(PREDICTIONS), world=3)
    assert one[0] == three[0] and values(one[1]) == values(three[1])
    assert one[1]["details"] == three[1]["details"]


def test_lmms_profile_prompt_parser_and_fallback(data):
    model = ScriptedModel(PREDICTIONS)
    _, metrics = run_task(MMMUVal(data=str(data), profile="lmms"), model)
    assert values(metrics)["accuracy"] == pytest.approx(4 / 7)
    assert metrics["details"]["n_random_fallback"] == 1 and metrics["details"]["n_random_fallback_correct"] == 1
    assert "\nA. mitochondria\nB. nucleus" in model.by_ref()["validation_Art_1"].text


def test_score_cli(data, tmp_path, capsys):
    preds = write_predictions(tmp_path / "p.jsonl", PREDICTIONS)
    out = score_cli(capsys, "mmmu_val", data, preds)
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(3 / 7) and out["missing_predictions"] == 1
    assert score_cli(capsys, "mmmu_dev", data, preds, "--profile", "lmms")["metrics"]["accuracy"]["value"] == \
        pytest.approx(4 / 7)


def test_failure_mode_exclude_leaves_failed_and_missing_answers_out_and_bad_modes_are_refused(data, tmp_path,
                                                                                                  capsys):
    """Physics_1 has no prediction: left out, 3 of the 6 answered are right, and the seeded draws stay the same."""
    _, metrics = run_task(MMMUVal(data=str(data), failure_mode="exclude"), ScriptedModel(PREDICTIONS))
    assert values(metrics)["accuracy"] == pytest.approx(3 / 6) and "science" in values(metrics)
    d = metrics["details"]
    assert (d["n_random_fallback"], d["n_random_fallback_correct"], d["n_failed"]) == (2, 0, 1)
    assert d["failure_mode"] == "exclude" and "Physics" not in d["per_subject"]
    preds = write_predictions(tmp_path / "p.jsonl", PREDICTIONS)
    out = score_cli(capsys, "mmmu_val", data, preds, "--task-args", '{"mmmu_val": {"failure_mode": "exclude"}}')
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(3 / 6) and out["missing_predictions"] == 1
    with pytest.raises(Exception, match="failure_mode"):
        MMMUVal(data=str(data), failure_mode="zero")


def test_score_rows_without_images(tmp_path, capsys):
    """MMMU rows with no image columns at all: enough to score predictions (same result as with the images)."""
    rows = [_row("validation_Art_1", "<image 1> Which organelle makes proteins?", ORGANELLES, "C", images=()),
            _row("validation_Art_2", "Which organelle? <image 1>", ORGANELLES, "B", images=()),
            _row("validation_Math_1", "What is 6*5? <image 1>", [], "30", "open", images=()),
            _row("validation_Physics_1", "Which, <image 1> or <image 2>?", ["<image 2>", "<image 1>"], "A", images=())]
    for r in rows:
        for k in range(1, 8):
            del r[f"image_{k}"]
    data = write_jsonl(tmp_path / "mmmu.jsonl", rows)
    preds = {"validation_Art_1": "(C)", "validation_Art_2": "the nucleus, I think, is the answer here",
             "validation_Math_1": "The answer is 30.", "validation_Physics_1": "B"}
    out = score_cli(capsys, "mmmu_val", data, write_predictions(tmp_path / "p.jsonl", preds))
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(3 / 4) and out["missing_predictions"] == 0
    with pytest.raises(DataError, match=r"row 1, column 'image_1'"):
        MMMUVal(data=str(data)).docs()


@pytest.mark.skipif(not (REF / "mmmu" / "answer_dict_val.json").exists(),
                    reason="shared/reference-data/mmmu/answer_dict_val.json not found next to the repository")
def test_score_against_the_real_answer_key(tmp_path, capsys):
    """MMMU's own answer_dict_val.json, as main_eval_only.py scores it: multiple-choice predictions are the parsed
    letter compared as is ("B." is wrong), open predictions are parsed; a missing one is wrong and counted."""
    path = REF / "mmmu" / "answer_dict_val.json"
    key = json.loads(path.read_text())
    preds = {}
    for id_, item in key.items():
        gold = item["ground_truth"]
        if item["question_type"] == "multiple-choice":
            preds[id_] = gold + "." if id_.startswith("validation_Accounting_") else gold
        elif id_ != "validation_Math_15":
            preds[id_] = f"The answer is {gold[0] if isinstance(gold, list) else gold}"
    out = score_cli(capsys, "mmmu_val", path, write_predictions(tmp_path / "p.jsonl", preds), "--output",
                    tmp_path / "res.json")
    m = {k: v["value"] for k, v in out["metrics"].items()}
    assert m["accuracy"] == pytest.approx(869 / 900) and m["business"] == pytest.approx(120 / 150)
    assert m["science"] == pytest.approx(149 / 150) and out["missing_predictions"] == 1
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["details"]["per_subject"]["Accounting"] == {"num": 30, "acc": 0.0}
    assert res["details"]["n_open"] == 53 and res["details"]["n_random_fallback"] == 0
    with pytest.raises(DataError, match="answer key .* can only score predictions"):
        MMMUVal(data=str(path)).docs()
    # main_eval_only.py scores the ids its predictions file holds: Math_15 is left out, not wrong
    out = score_cli(capsys, "mmmu_val", path, tmp_path / "p.jsonl", "--task-args",
                    '{"mmmu_val": {"failure_mode": "exclude"}}')
    m = {k: v["value"] for k, v in out["metrics"].items()}
    assert m["accuracy"] == pytest.approx(869 / 899) and m["science"] == 1.0 and out["missing_predictions"] == 1


def test_missing_referenced_image_names_row_and_column(tmp_path):
    write_png(tmp_path / "img" / "a.png")
    bad = write_jsonl(tmp_path / "bad.jsonl", [_row("validation_Art_1", "Q <image 1>", ["a", "b"], "A"),
                                               _row("validation_Art_2", "Q <image 1> <image 2>", ["a", "b"], "A")])
    with pytest.raises(DataError, match=r"bad.jsonl: row 2, column 'image_2'"):
        MMMUVal(data=str(bad)).docs()
    odd = write_jsonl(tmp_path / "odd.jsonl", [_row("validation_Art_1", "Q", "[not a list", "A")])
    with pytest.raises(DataError, match="column 'options'"):
        MMMUDev(data=str(odd)).docs()


@pytest.mark.skipif(not (REF / "mmmu" / "answer_dict_val.json").exists(),
                    reason="shared/reference-data/mmmu/answer_dict_val.json not found next to the repository")
def test_validation_answer_key_composition_and_list_answers(tmp_path):
    key = json.loads((REF / "mmmu" / "answer_dict_val.json").read_text())
    rows = []
    for id_, item in key.items():
        gold = item["ground_truth"]
        mc = item["question_type"] == "multiple-choice"
        # the HF column is a string: list-valued golds are stored as the string form of the list
        rows.append(_row(id_, "Q", ORGANELLES + ["e", "f", "g", "h", "i"] if mc else [], str(gold),
                         item["question_type"], images=()))
    data = write_jsonl(tmp_path / "val.jsonl", rows)
    task = MMMUVal(data=str(data))
    docs = task.docs()
    assert len(docs) == 900 and sum(d["question_type"] == "multiple-choice" for d in docs) == 847
    subjects = {d["subject"] for d in docs}
    assert len(subjects) == 30 and all(sum(d["subject"] == s for d in docs) == 30 for s in subjects)
    assert [d["answer"] for d in docs if isinstance(d["answer"], list)] == [["$MgS$", "MgS"], ["Tampa", "Florida"],
                                                                           ["24/7", "3.429"]]
    # the gold answer itself always scores correct, list-valued golds included
    records = [task.process(d, {"answer": [Response(text=d["answer"][0] if isinstance(d["answer"], list)
                                                    else d["answer"])]}) for d in docs]
    metrics = task.aggregate(records)
    assert values(metrics)["accuracy"] == 1.0 and metrics["details"]["n_random_fallback"] == 0
    assert len(metrics["details"]["per_discipline"]) == 6


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
@pytest.mark.parametrize("cls", [MMMUVal, MMMUDev])
def test_shapes_world_end_to_end(cls, shapes):
    task = cls(data=shapes)
    oracle = {d["doc_id"]: d["answer"] if isinstance(d["answer"], str) else d["answer"][0] for d in task.docs()}
    _, metrics = run_task(task, ScriptedModel(oracle))
    assert values(metrics)["accuracy"] == 1.0 and task.dataset_info.source == "shapes"
