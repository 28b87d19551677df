"""NaturalBench end to end on grouped fixtures in the BaiqiL/NaturalBench schema."""
import pytest

from harness.errors import DataError
from tasks.naturalbench.task import NaturalBench
from understanding_doubles import (ScriptedModel, run_task, score_cli, shapes, values, world_available,  # noqa: F401
                                   world_cache, write_jsonl, write_png, write_predictions)


def _group(index, qtype, answers, q0="Is the ball red?", q1="Is the ball blue?"):
    """answers in the order (q0,i0), (q0,i1), (q1,i0), (q1,i1)."""
    return {"Index": index, "Image_0": "i0.png", "Image_1": "i1.png", "Question_0": q0,
            "Image_0_Question_0": answers[0], "Image_1_Question_0": answers[1], "Question_1": q1,
            "Image_0_Question_1": answers[2], "Image_1_Question_1": answers[3], "Question_Type": qtype,
            "Source": "fixture"}


@pytest.fixture
def data(tmp_path):
    write_png(tmp_path / "i0.png")
    write_png(tmp_path / "i1.png", (0, 0, 255))
    rows = [_group(0, "yes_no", ["Yes", "No", "No", "Yes"]),
            _group(1, "multiple_choice", ["A", "B", "B", "A"], "Which? A. cat B. dog", "Which? A. dog B. cat"),
            _group(2, "yes_no", ["No", "Yes", "Yes", "No"])]          # deviates from Yes/No/No/Yes
    return write_jsonl(tmp_path / "nb.jsonl", rows)


# group 0 -> [1,0,0,1] all right; group 1 -> [1,1,1,1] ("It is a B" parses as A) vs A/B/B/A; group 2 -> [0,1,1,-1]
# (last answer missing) against its own answers [0,1,1,0]. The spec's three-group example: Q .5, I .5, Acc .75, G 1/3.
PREDICTIONS = {"0:q0:i0": "Yes", "0:q0:i1": "No.", "0:q1:i0": "no", "0:q1:i1": "yes",
               "1:q0:i0": "A", "1:q0:i1": "A", "1:q1:i0": "(A)", "1:q1:i1": "It is a B",
               "2:q0:i0": "No", "2:q0:i1": "Yes", "2:q1:i0": "Yes"}


def test_end_to_end_group_scores(data):
    model = ScriptedModel(PREDICTIONS)
    records, metrics = run_task(NaturalBench(data=str(data)), model)
    v = values(metrics)
    assert v["g_acc"] == pytest.approx(1 / 3) and v["acc"] == pytest.approx(0.75)
    assert v["q_acc"] == pytest.approx(0.5) and v["i_acc"] == pytest.approx(0.5)
    assert metrics["g_acc"]["stderr"] is not None
    d = metrics["details"]
    assert d["deviating_groups"] == [{"index": 2, "ground_truth": [0, 1, 1, 0]}]
    assert (d["n_failed"], d["n_unparsed"], d["n_groups"]) == (1, 0, 3)
    assert [r.ref for r in model.requests[:4]] == ["0:q0:i0", "0:q0:i1", "0:q1:i0", "0:q1:i1"]
    assert model.by_ref()["0:q0:i0"].text == "Is the ball red?Please answer Yes or No."
    assert model.by_ref()["1:q1:i1"].text == ("Which? A. dog B. catPlease output the letter corresponding to the "
                                              "correct option.")
    assert model.by_ref()["0:q0:i0"].params == {"max_new_tokens": 16, "do_sample": False}
    # image k of the group goes with i{k}
    assert model.by_ref()["0:q1:i1"].images[0].sha256 == model.by_ref()["0:q0:i1"].images[0].sha256
    assert model.by_ref()["0:q0:i0"].images[0].sha256 != model.by_ref()["0:q0:i1"].images[0].sha256


def test_lmms_separator(data):
    model = ScriptedModel(PREDICTIONS)
    run_task(NaturalBench(data=str(data), profile="lmms"), model)
    assert model.by_ref()["0:q0:i0"].text == "Is the ball red? Please answer Yes or No."


def test_score_cli(data, tmp_path, capsys):
    out = score_cli(capsys, "naturalbench", data, write_predictions(tmp_path / "p.jsonl", PREDICTIONS))
    assert out["metrics"]["g_acc"]["value"] == pytest.approx(1 / 3) and out["missing_predictions"] == 1
    assert out["metrics"]["acc"]["value"] == pytest.approx(0.75)


def test_score_keeps_look_alike_requests_apart(tmp_path, capsys):
    """Both image columns hold the same file, so (q0,i0) and (q0,i1) are the same text with the same image; each
    prediction id must still get its own prediction: four right answers are G-Acc 1, not 0."""
    write_png(tmp_path / "same.png")
    row = {**_group(0, "yes_no", ["Yes", "No", "No", "Yes"]), "Image_0": "same.png", "Image_1": "same.png",
           "Question_1": "Is the ball red?"}                 # both questions alike too: all four requests look alike
    data = write_jsonl(tmp_path / "nb.jsonl", [row])
    preds = write_predictions(tmp_path / "p.jsonl", {"0:q0:i0": "Yes", "0:q0:i1": "No", "0:q1:i0": "No",
                                                     "0:q1:i1": "Yes"})
    out = score_cli(capsys, "naturalbench", data, preds)
    assert out["metrics"]["g_acc"]["value"] == 1.0 and out["metrics"]["acc"]["value"] == 1.0
    swapped = write_predictions(tmp_path / "s.jsonl", {"0:q0:i0": "No", "0:q0:i1": "Yes", "0:q1:i0": "Yes",
                                                       "0:q1:i1": "No"})
    out = score_cli(capsys, "naturalbench", data, swapped)
    assert out["metrics"]["acc"]["value"] == 0.0


def test_score_rows_without_images(tmp_path, capsys):
    """NaturalBench's rows without their image columns: enough to score predictions, refused by run."""
    rows = [_group(0, "yes_no", ["Yes", "No", "No", "Yes"]),
            _group(1, "multiple_choice", ["A", "B", "B", "A"], "Which? A. cat B. dog", "Which? A. dog B. cat"),
            _group(2, "yes_no", ["No", "Yes", "Yes", "No"])]
    for r in rows:
        del r["Image_0"], r["Image_1"]
    data = write_jsonl(tmp_path / "nb.jsonl", rows)
    out = score_cli(capsys, "naturalbench", data, write_predictions(tmp_path / "p.jsonl", PREDICTIONS))
    assert out["metrics"]["g_acc"]["value"] == pytest.approx(1 / 3) and out["missing_predictions"] == 1
    assert out["metrics"]["acc"]["value"] == pytest.approx(0.75)
    with pytest.raises(DataError, match=r"row 1 has no column 'Image_0'"):
        NaturalBench(data=str(data)).docs()


def test_bad_rows(tmp_path):
    write_png(tmp_path / "i0.png")
    write_png(tmp_path / "i1.png")
    bad = write_jsonl(tmp_path / "bad.jsonl", [_group(0, "yes_no", ["Yes", "No", "No", "Maybe"])])
    with pytest.raises(DataError, match=r"row 1, column 'Image_1_Question_1'"):
        NaturalBench(data=str(bad)).docs()
    bad = write_jsonl(tmp_path / "bad2.jsonl", [_group(0, "open", ["Yes", "No", "No", "Yes"])])
    with pytest.raises(DataError, match=r"row 1, column 'Question_Type'"):
        NaturalBench(data=str(bad)).docs()


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
def test_shapes_world_end_to_end(shapes):
    task = NaturalBench(data=shapes)
    words = {"yes_no": ("No", "Yes"), "multiple_choice": ("B", "A")}
    oracle = {f"{d['index']}:q{i}:i{j}": words[d["question_type"]][g]
              for d in task.docs() for (i, j), g in zip([(0, 0), (0, 1), (1, 0), (1, 1)], d["gt"])}
    _, metrics = run_task(task, ScriptedModel(oracle))
    assert values(metrics)["g_acc"] == 1.0 and task.dataset_info.source == "shapes"
