"""AdVQA end to end on a fixture in the VQA schema (plain-string answers), and the hub: data form."""
import pytest

import harness.data
from harness.errors import DataError
from tasks.advqa.task import AdVQAVal
from tasks.vqav2.task import VQAv2Val
from understanding_doubles import (ScriptedModel, run_task, score_cli, shapes, values, world_available,  # noqa: F401
                                   world_cache, write_jsonl, write_png, write_predictions)


@pytest.fixture
def data(tmp_path):
    write_png(tmp_path / "a.png")
    rows = [{"question_id": 501, "image_id": 1, "question": "How many circles are not red?", "image": "a.png",
             "answers": ["3"] * 3 + ["three"] * 6 + ["4"], "answer_type": "number", "question_type": "how many"},
            {"question_id": 502, "image_id": 1, "question": "Is anything round?", "image": "a.png",
             "answers": ["no"] * 10, "answer_type": "yes/no", "question_type": "is"},
            {"question_id": 503, "image_id": 1, "question": "What is left of the square?", "image": "a.png",
             "answers": ["circle"] * 2 + ["triangle"] * 8, "answer_type": "other", "question_type": "what"}]
    return write_jsonl(tmp_path / "advqa.jsonl", rows)


# 501: "Three" -> "3" matches 9 -> 1.0; 502: "No." vs 10x"no": official 0 (no normalisation), lmms 1;
# 503: missing -> 0
PREDICTIONS = {"501": "Three", "502": "No."}


def test_end_to_end_and_score_cli(data, tmp_path, capsys):
    model = ScriptedModel(PREDICTIONS)
    task = AdVQAVal(data=str(data))
    _, metrics = run_task(task, model)
    assert values(metrics)["accuracy"] == pytest.approx(1 / 3) and metrics["details"]["n_failed"] == 1
    assert model.by_ref()["501"].text == "How many circles are not red?\nAnswer the question using a single word " \
                                         "or phrase."
    preds = write_predictions(tmp_path / "p.jsonl", PREDICTIONS)
    out = score_cli(capsys, "advqa_val", data, preds, "--profile", "lmms")
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(2 / 3) and out["missing_predictions"] == 1
    assert task.settings()["default_hub"] == "HuggingFaceM4/AdVQA"


def test_hub_form_reads_another_repository(monkeypatch):
    seen = {}

    def fake_load_hub(repo, config, split, revision=None, image_columns=()):
        seen.update(repo=repo, split=split, revision=revision)
        raise DataError(f"dataset {repo} is not in the local Hugging Face cache")

    monkeypatch.setattr(harness.data, "load_hub", fake_load_hub)
    with pytest.raises(DataError, match="lmms-lab-encoder/VQAv2"):
        VQAv2Val(data="hub:lmms-lab-encoder/VQAv2@abc123").docs()
    assert seen == {"repo": "lmms-lab-encoder/VQAv2", "split": "validation", "revision": "abc123"}
    with pytest.raises(DataError, match="HuggingFaceM4/AdVQA"):
        AdVQAVal().docs()
    assert seen["split"] == "val"


@pytest.mark.skipif(not world_available(), reason="embedded world datasets not available")
def test_shapes_world_end_to_end(shapes):
    task = AdVQAVal(data=shapes, limit=40)
    oracle = {d["doc_id"]: max(set(d["answers"]), key=d["answers"].count) for d in task.docs()}
    _, metrics = run_task(task, ScriptedModel(oracle))
    assert values(metrics)["accuracy"] == pytest.approx(1.0) and task.dataset_info.name == "advqa"
