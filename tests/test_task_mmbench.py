"""MMBench-EN end to end on circular fixtures in the lmms-lab/MMBench schema: CircularEval, judge stage, test TSV."""
import csv
import io
import json

import pytest

from harness.api import RunConfig, evaluate
from harness.errors import DataError
from tasks.mmbench.task import MMBenchEnDev, MMBenchEnTest
from understanding_doubles import (ScriptedJudge, ScriptedModel, run_task, score_cli, shapes, values,  # noqa: F401
                                   world_available, world_cache, write_jsonl, write_png, write_predictions)


def _passes(index, options, answer, category, l2, hint=None, question="What is shown?"):
    """All circular passes of a question: pass k rotates the options by k (index + k * 1e6)."""
    rows = []
    for k in range(len(options)):
        rotated = options[k:] + options[:k]
        row = {"index": index + k * 1_000_000, "question": question, "hint": hint if hint else "nan",
               "answer": "ABCD"[rotated.index(options["ABCD".index(answer)])], "category": category,
               "L2-category": l2, "image": "img.png", "source": "fixture", "comment": "nan", "split": "dev"}
        for j, letter in enumerate("ABCD"):
            row[letter] = rotated[j] if j < len(rotated) else "nan"
        rows.append(row)
    return rows


@pytest.fixture
def dev(tmp_path):
    write_png(tmp_path / "img.png")
    rows = (_passes(1, ["cat", "dog", "bird"], "A", "object_localization", "coarse_perception", hint="A pet.")
            + _passes(2, ["red", "blue"], "B", "attribute_recognition", "coarse_perception")
            + _passes(3, ["one", "two"], "A", "image_emotion", "logic_reasoning"))
    rows.append({**_passes(4, ["x", "y"], "A", "ocr", "logic_reasoning")[1]})   # a group without its pass 0
    return write_jsonl(tmp_path / "dev.jsonl", rows)


# q1: every pass right -> hit (answers: A; B after one rotation; C after two). q2: pass 1 does not parse -> miss
# (a judge that maps it to the right letter turns it into a hit). q3: pass 1 has no prediction -> miss, counted.
PREDICTIONS = {"1": "A", "1000001": "The answer is C.", "2000001": "(B)", "2": "B", "1000002": "I would say A or B",
               "3": "A"}


def _expected_letters():
    return {"1000001": "C", "2000001": "B"}


def test_dev_circular_eval_end_to_end(dev):
    model = ScriptedModel(PREDICTIONS)
    task = MMBenchEnDev(data=str(dev))
    records, metrics = run_task(task, model)
    assert [r["index"] for r in records] == [1, 2, 3] and task.dataset_info.extra["orphan_groups"] == 1
    assert values(metrics)["circular_accuracy"] == pytest.approx(1 / 3)
    d = metrics["details"]
    assert (d["n_unparsed_passes"], d["n_failed"], d["n_passes"], d["n_judged"]) == (1, 1, 7, 0)
    assert d["per_l2_category"] == {"coarse_perception": {"n": 2, "acc": 0.5}, "logic_reasoning": {"n": 1, "acc": 0.0}}
    assert d["pass0_accuracy"] == 1.0
    assert model.by_ref()["1"].text == ("Hint: A pet.\nQuestion: What is shown?\nOptions:\nA. cat\nB. dog\nC. bird\n"
                                        "Please select the correct answer from the options above. \n")
    assert model.by_ref()["1"].params == {"max_new_tokens": 512, "do_sample": False}
    assert len(model.requests) == 7
    assert records[0]["passes"][1]["answer"] == _expected_letters()["1000001"]


def test_lmms_prompt(dev):
    model = ScriptedModel(PREDICTIONS)
    _, metrics = run_task(MMBenchEnDev(data=str(dev), profile="lmms"), model)
    assert model.by_ref()["2"].text == ("What is shown? There are several options:\nA. red\nB. blue\n\n"
                                        "Answer with the option's letter from the given choices directly.")
    assert model.by_ref()["2"].params["max_new_tokens"] == 1024
    assert values(metrics)["circular_accuracy"] == pytest.approx(1 / 3)


def test_judge_stage_only_for_unparsed_passes_of_open_questions(dev):
    judge = ScriptedJudge({"1000002:judge": "A"})
    task = MMBenchEnDev(data=str(dev), judge=True)
    records, metrics = run_task(task, ScriptedModel(PREDICTIONS), judge)
    # one judge call: q2's unparsed pass; q3 already lost a pass (failed), q1 parsed everywhere
    assert [r.ref for r in judge.requests] == ["1000002:judge"]
    assert "Answer: I would say A or B\nYour output: " in judge.requests[0].text
    assert "There are several options: \nA. blue\nB. red\n" in judge.requests[0].text
    assert values(metrics)["circular_accuracy"] == pytest.approx(2 / 3)
    assert (metrics["details"]["n_judged"], metrics["details"]["n_judge_resolved"]) == (1, 1)
    assert task.settings()["judge"]["enabled"] is True and MMBenchEnDev(data=str(dev)).settings()["judge"] == {
        "enabled": False}


def test_score_cli_keys_predictions_by_row_index(dev, tmp_path, capsys):
    preds = write_predictions(tmp_path / "p.jsonl", PREDICTIONS)
    out = score_cli(capsys, "mmbench_en_dev", dev, preds)
    assert out["metrics"]["circular_accuracy"]["value"] == pytest.approx(1 / 3) and out["missing_predictions"] == 1


def test_score_cli_test_split_counts(tmp_path, capsys):
    write_png(tmp_path / "img.png")
    rows = [{**r, "answer": None} for r in _passes(7, ["cat", "dog", "cow"], "A", "ocr", "logic")]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    preds = write_predictions(tmp_path / "p.jsonl", {"7": "A", "1000007": "x"})
    out = score_cli(capsys, "mmbench_en_test", data, preds)
    assert out["metrics"]["answered"]["value"] == 2 and out["missing_predictions"] == 1


TSV_COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
               "l2-category", "comment", "split")


def _tsv(path, rows, with_images=True):
    """MMBench's own TSV (VLMEvalKit's MMBench_DEV_EN.tsv schema): empty cells for missing options and hints, the
    image as base64 in a question's first pass and the index of that row in its other passes."""
    import base64

    from understanding_doubles import png

    columns = [c for c in TSV_COLUMNS if with_images or c != "image"]
    lines = ["\t".join(columns)]
    for r in rows:
        first = r["index"] % 1_000_000
        cell = {**r, "l2-category": r["L2-category"], "hint": "" if r["hint"] == "nan" else r["hint"],
                "image": base64.b64encode(png((10 * first, 0, 0))).decode() if r["index"] == first else str(first)}
        lines.append("\t".join("" if cell.get(c) in (None, "nan") else str(cell[c]) for c in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_official_tsv_with_and_without_its_image_column(dev, tmp_path, capsys):
    rows = [json.loads(x) for x in dev.read_text().splitlines()][:-1]     # the orphan pass refers to no image
    tsv = _tsv(tmp_path / "MMBench_DEV_EN.tsv", rows)
    model = ScriptedModel(PREDICTIONS)
    task = MMBenchEnDev(data=str(tsv))
    records, metrics = run_task(task, model)
    assert values(metrics)["circular_accuracy"] == pytest.approx(1 / 3)
    assert metrics["details"]["per_l2_category"]["coarse_perception"] == {"n": 2, "acc": 0.5}
    assert model.by_ref()["1"].text.startswith("Hint: A pet.\nQuestion: What is shown?\nOptions:\nA. cat\n")
    assert "C." not in model.by_ref()["2"].text                   # an empty option cell is a missing option
    img = model.by_ref()["1000001"].images[0]
    assert img.pil().getpixel((0, 0)) == (10, 0, 0) and img.sha256 == model.by_ref()["1"].images[0].sha256
    preds = write_predictions(tmp_path / "p.jsonl", PREDICTIONS)
    assert score_cli(capsys, "mmbench_en_dev", tsv, preds)["metrics"]["circular_accuracy"]["value"] == \
        pytest.approx(1 / 3)
    bare = _tsv(tmp_path / "no_images.tsv", rows, with_images=False)
    out = score_cli(capsys, "mmbench_en_dev", bare, preds)
    assert out["metrics"]["circular_accuracy"]["value"] == pytest.approx(1 / 3) and out["missing_predictions"] == 1
    with pytest.raises(DataError, match=r"no_images.tsv: row 1, column 'image': missing"):
        MMBenchEnDev(data=str(bare)).docs()
    broken = tmp_path / "broken.tsv"
    broken.write_text(tsv.read_text().replace("\t1\tfixture", "\t99\tfixture", 1))
    with pytest.raises(DataError, match=r"broken.tsv: row \d+, column 'image': '99'"):
        MMBenchEnDev(data=str(broken)).docs()


def test_tsv_cells_pandas_reads_as_missing_are_missing_options_and_hints(tmp_path):
    """VLMEvalKit loads the TSV with pandas.read_csv(sep="\\t"): "None", "NA", "N/A", "null"... are NaN there, so such
    an option is no choice and such a hint no hint; "none" or " NA" stay text."""
    import pandas as pd

    from tasks.mmbench.tsv import PANDAS_NA, read_tsv

    words = sorted(PANDAS_NA - {""}) + ["none", " NA", "Nan", "NONE", "None of the above"]
    path = tmp_path / "na.tsv"
    path.write_text("index\tquestion\thint\tA\tB\n" + "".join(f"{i}\tq\t{w}\tcat\t{w}\n" for i, w in enumerate(words)))
    frame = pd.read_csv(path, sep="\t")
    ours = read_tsv(path)
    assert [r["B"] is None for r in ours] == [bool(pd.isna(v)) for v in frame["B"]]
    assert sum(r["B"] is None for r in ours) == len(PANDAS_NA) - 1      # every default NA word, nothing else
    rows = _passes(1, ["cat", "dog", "None"], "A", "c", "l2")[:1]        # pass 0: options cat, dog, None
    rows[0]["hint"] = "N/A"
    model = ScriptedModel({}, default="A")
    run_task(MMBenchEnDev(data=str(_tsv(tmp_path / "MMBench_DEV_EN.tsv", rows))), model)
    assert model.by_ref()["1"].text.startswith("Question: What is shown?\nOptions:\nA. cat\nB. dog\n")
    assert "C." not in model.by_ref()["1"].text and "Hint" not in model.by_ref()["1"].text


def test_bad_rows(tmp_path):
    write_png(tmp_path / "img.png")
    rows = _passes(1, ["a", "b"], "A", "c", "l2")
    rows[1]["answer"] = "E"
    with pytest.raises(DataError, match=r"row 2, column 'answer'"):
        MMBenchEnDev(data=str(write_jsonl(tmp_path / "bad.jsonl", rows))).docs()
    rows = _passes(1, ["a", "b"], "A", "c", "l2") + _passes(1, ["a", "b"], "A", "c", "l2")[:1]
    with pytest.raises(DataError, match="same index 1"):
        MMBenchEnDev(data=str(write_jsonl(tmp_path / "dup.jsonl", rows))).docs()


def test_test_split_writes_the_server_tsv(tmp_path):
    write_png(tmp_path / "img.png")
    rows = [{**r, "answer": None, "split": "test"} for r in _passes(7, ["cat", "dog"], "A", "ocr", "logic")]
    data = write_jsonl(tmp_path / "test.jsonl", rows)
    res = evaluate(ScriptedModel({"7": "A"}), [MMBenchEnTest(data=str(data))],
                   RunConfig(output=tmp_path / "out", progress=False, use_cache=False))
    result = res.results["mmbench_en_test"].to_dict()
    assert result["metrics"]["answered"]["value"] == 1 and result["metrics"]["failed"]["value"] == 1
    assert "circular_accuracy" not in result["metrics"]
    tsv = (res.run_dir / "mmbench_en_test" / MMBenchEnTest.SUBMISSION).read_text()
    table = list(csv.DictReader(io.StringIO(tsv), delimiter="\t"))
    assert [(r["index"], r["prediction"], r["A"], r["B"], r["hint"]) for r in table] == [
        ("7", "A", "cat", "dog", ""), ("1000007", "", "dog", "cat", "")]
    assert table[0]["l2-category"] == "logic" and table[0]["C"] == ""


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
@pytest.mark.parametrize("cls", [MMBenchEnDev, MMBenchEnTest])
def test_shapes_world_end_to_end(cls, shapes):
    task = cls(data=shapes, limit=20)
    oracle = {str(p["index"]): p["answer"] for d in task.docs() for p in d["passes"]}
    _, metrics = run_task(task, ScriptedModel(oracle))
    v = values(metrics)
    assert (v["circular_accuracy"] == 1.0) if cls is MMBenchEnDev else (v["failed"] == 0 and v["answered"] > 20)
