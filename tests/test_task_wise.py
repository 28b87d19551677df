"""WISE end to end: the world (rule judge), the legacy / lmms / verified profiles with a test-double judge giving
canned (also malformed) answers, the real prompt files, and the offline errors."""
import json
from pathlib import Path

import pytest

from generation_doubles import CannedJudge, SequencedJudge, SolidDouble, WorldRenderDouble, run_engine, run_task
from harness.errors import DataError
from tasks.world import build
from tasks.wise import scoring
from tasks.wise.task import WISE
from understanding_doubles import shapes, values, world_cache  # noqa: F401

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data" / "wise"
N = 12
GOOD = "Consistency: 2\nRealism: 1\nAesthetic Quality: 1"          # WiScore 0.85


@pytest.fixture
def judge_prompt(tmp_path):
    path = tmp_path / "judge.json"
    path.write_text(json.dumps({"system": "You are a strict auditor.",
                                "user": 'Rate it.\nPROMPT: "{Prompt}"\nEXPLANATION: "{Explanation}"'}))
    return str(path)


def _rows(tmp_path, ids):
    cats = {1: "Cultural knowledge", 2: "Cultural knowledge", 401: "time", 402: "time", 568: "Space"}
    rows = [{"Prompt": f"prompt {i}", "Explanation": f"explains {i}", "Category": cats[i], "Subcategory": "x",
             "prompt_id": i} for i in ids]
    path = tmp_path / "wise.json"
    path.write_text(json.dumps(rows))
    return str(path)


def test_perfect_double_on_shapes_through_the_engine(shapes, tmp_path):
    model = WorldRenderDouble(wise=build("wise", n=N))
    res = run_engine(tmp_path, WISE(data=shapes, world_n=N), model).results["wise"].to_dict()
    m = {k: v["value"] for k, v in res["metrics"].items()}
    assert m["overall"] == pytest.approx(1.0) and m["consistency"] == 2.0 and m["realism"] == 2.0
    assert all(m[c.lower()] == pytest.approx(1.0) for c in scoring.CATEGORIES)
    assert res["metrics"]["consistency"]["scale"] == 1.0 and res["details"]["n_failed"] == 0
    s = res["settings"]
    assert s["protocol"] == "legacy" and s["judge"]["model"] == "world_judge/world-1"
    assert len(s["judge"]["prompt_sha256"]) == 64 and res["profile"] == "legacy"
    assert [r.text for r in model.requests] == [row["Prompt"] for row in build("wise", n=N)]   # raw prompts


def test_blank_images_score_zero_and_a_failure_refuses_overall(shapes):
    _, metrics = run_task(WISE(data=shapes, world_n=N), WorldRenderDouble("blank"))
    v = values(metrics)
    assert v["overall"] == 0.0 and v["consistency"] == 0.0 and v["aesthetic_quality"] == 0.0
    records, metrics = run_task(WISE(data=shapes, world_n=N), WorldRenderDouble("blank", fail={"1"}))
    assert values(metrics)["overall"] is None and metrics["details"]["failures"]["generate"] == 1
    assert "1 expected prompts have no usable score" in metrics["details"]["overall_refused"]
    _, lmms = run_task(WISE(data=shapes, world_n=N, profile="lmms"), WorldRenderDouble("blank", fail={"1"}))
    assert values(lmms)["overall"] == 0.0 and lmms["details"]["failures_scored_zero"]


def test_legacy_parses_canned_answers_counts_failures_and_refuses_overall(tmp_path, judge_prompt):
    answers = {"1": GOOD, "2": "**Consistency:** 2\n**Realism:** 1\n**Aesthetic Quality:** 2",   # colon in bold
               "401": "2\n1\n1", "402": "Consistency: 3\nRealism: 2\nAesthetic Quality: 2",       # out of range
               "568": None}                                                                      # judge error
    judge = CannedJudge(answers)
    task = WISE(data=_rows(tmp_path, [1, 2, 401, 402, 568]), judge_prompt=judge_prompt)
    records, metrics = run_task(task, SolidDouble(), {"judge": judge})
    v = values(metrics)
    assert v["overall"] is None and v["culture"] == pytest.approx(0.85) and v["time"] == pytest.approx(0.85)
    d = metrics["details"]
    assert d["failures"] == {"generate": 0, "judge": 1, "parse": 2} and d["n_scored"] == 2
    assert d["missing_categories"] == ["SPACE", "BIOLOGY", "PHYSICS", "CHEMISTRY"] and d["missing_prompt_ids"] == 998
    assert "Overall refused" in d["overall_refused"]
    assert {r["prompt_id"]: r["error"] for r in records if r["failed"] == "parse"} == {
        2: "no score lines found", 402: "out of range 0-2: consistency=3"}
    req = next(r for r in judge.requests if r.ref == "1")
    assert req.text == 'Rate it.\nPROMPT: "prompt 1"\nEXPLANATION: "explains 1"' and len(req.images) == 1
    assert req.params == {"temperature": 0.0, "max_tokens": 2000, "system": "You are a strict auditor."}
    s = task.settings()
    assert s["judge"]["model"] == "gpt-4o-2024-05-13" and s["judge"]["prompt_sha256"] == task.prompt.sha256


def test_lmms_profile_scores_failures_zero_and_renormalises(tmp_path, judge_prompt):
    answers = {"1": GOOD, "2": "no idea", "401": "Consistency: 1\nRealism: 1\nAesthetic Quality: 1"}
    judge = CannedJudge(answers)
    task = WISE(data=_rows(tmp_path, [1, 2, 401]), judge_prompt=judge_prompt, profile="lmms")
    _, metrics = run_task(task, SolidDouble(), {"judge": judge})
    culture, time = (0.85 + 0.0) / 2, 0.5
    assert values(metrics)["overall"] == pytest.approx((0.4 * culture + 0.167 * time) / 0.567)
    assert metrics["details"]["renormalised"] and metrics["details"]["failures"]["parse"] == 1
    assert {r.params["max_tokens"] for r in judge.requests} == {128}
    assert task.settings()["protocol"] == "legacy"


def test_verified_profile_binary_scores(tmp_path, judge_prompt):
    judge = CannedJudge({"1": "<think>hmm</think>Score: 1", "2": "Score: 10", "401": "0"})
    task = WISE(data=_rows(tmp_path, [1, 2, 401]), judge_prompt=judge_prompt, profile="verified")
    records, metrics = run_task(task, SolidDouble(), {"judge": judge})
    assert [r["score"] for r in records] == [1.0, None, 0.0] and metrics["details"]["failures"]["parse"] == 1
    assert values(metrics)["overall"] is None and task.settings()["protocol"] == "verified"
    assert {r.params["max_tokens"] for r in judge.requests} == {500}


def test_verified_overall_aggregates_the_prompts_present_as_calculate_verified_does(tmp_path, judge_prompt):
    cats = {1: "Cultural knowledge", 2: "Cultural knowledge", 401: "time", 521: "Space", 641: "Biology",
            761: "Physical Knowledge", 881: "Chemistry"}
    path = tmp_path / "wise_verified.json"
    path.write_text(json.dumps([{"Prompt": f"prompt {i}", "Explanation": "e", "Category": c, "Subcategory": "x",
                                 "prompt_id": i} for i, c in cats.items()]))
    replies = {"1": "Score: 1", "2": "no verdict", "401": "Score: 1", "521": "Score: 0", "641": "Score: 1",
               "761": "Score: 0", "881": "Score: 1"}
    task = WISE(data=str(path), judge_prompt=judge_prompt, profile="verified")
    _, metrics = run_task(task, SolidDouble(), {"judge": CannedJudge(replies)})
    # calculate_verified.py: a prompt the judge never scored is missing (as are the 993 ids of 1-1000 this file
    # lacks); it warns and takes Overall over the rest, in its own term order
    assert values(metrics)["overall"] == 0.4 * 1.0 + 0.12 * 1.0 + 0.12 * 0.0 + 0.12 * 1.0 + 0.12 * 0.0 + 0.12 * 1.0
    d = metrics["details"]
    assert d["missing_prompt_ids"] == 994 and not d["coverage_complete"] and "overall_refused" not in d
    assert "994 expected prompts have no usable score (e.g. ids [2, 3, 4, 5, 6])" in d["overall_partial"]
    replies["881"] = "no verdict"          # a whole category without a score: refused, as the official script does
    _, metrics = run_task(WISE(data=str(path), judge_prompt=judge_prompt, profile="verified"), SolidDouble(),
                          {"judge": CannedJudge(replies)})
    assert values(metrics)["overall"] is None
    assert "refused as the official calculate_verified.py does" in metrics["details"]["overall_refused"]


def test_judge_is_asked_again_as_the_official_loop_does_and_attempts_are_cached(tmp_path, judge_prompt):
    bad = "I cannot rate this image."
    replies = {"1": [bad, GOOD],                        # scored on the second attempt
               "2": [bad, "Consistency: 1", bad],       # never scored: three attempts, then a parse failure
               "401": [GOOD],                           # one attempt
               "402": [None, GOOD],                     # a failed request is asked again too
               "568": ["Consistency: 3\nRealism: 2\nAesthetic Quality: 2", GOOD]}   # accepted upstream: not re-asked
    judge = SequencedJudge(replies)
    task = WISE(data=_rows(tmp_path, [1, 2, 401, 402, 568]), judge_prompt=judge_prompt)
    run = run_engine(tmp_path, task, SolidDouble(), {"judge": judge})
    res = run.results["wise"].to_dict()
    records = [json.loads(x)["record"] for x in (run.run_dir / "wise" / "samples.jsonl").read_text().splitlines()]
    by_id = {r["prompt_id"]: r for r in records}
    assert {i: r["judge_attempts"] for i, r in by_id.items()} == {1: 2, 2: 3, 401: 1, 402: 2, 568: 1}
    assert by_id[1]["score"] == pytest.approx(0.85) and by_id[402]["score"] == pytest.approx(0.85)
    assert by_id[2]["failed"] == "parse" and by_id[2]["error"] == "no score lines found"
    assert by_id[568]["failed"] == "parse" and "out of range" in by_id[568]["error"]
    assert sorted((r.ref, r.params.get("attempt", 1)) for r in judge.requests) == [
        ("1", 1), ("1", 2), ("2", 1), ("2", 2), ("2", 3), ("401", 1), ("402", 1), ("402", 2), ("568", 1)]
    d = res["details"]
    assert d["judge_attempts"] == {"limit": 3, "per_prompt": {"1": 2, "2": 2, "3": 1}, "scored_after_reasking": 2}
    assert d["failures"] == {"generate": 0, "judge": 0, "parse": 2} and res["settings"]["judge"]["attempts"] == 3
    # rerun: every answered attempt comes from the cache; only the attempt that failed (not cached) is asked again
    again = SequencedJudge(replies)
    rerun = run_engine(tmp_path, WISE(data=_rows(tmp_path, [1, 2, 401, 402, 568]), judge_prompt=judge_prompt),
                       SolidDouble(), {"judge": again}).results["wise"].to_dict()
    assert [(r.ref, r.params.get("attempt", 1)) for r in again.requests] == [("402", 1)]
    assert rerun["metrics"] == res["metrics"]


@pytest.mark.skipif(not (REF / "legacy").exists(), reason="needs ../shared/reference-data/wise (real prompt files)")
def test_real_legacy_prompts_give_the_weighted_overall(judge_prompt):
    task = WISE(data=str(REF / "legacy"), judge_prompt=judge_prompt)
    judge = CannedJudge({"1000": "Consistency: 0\nRealism: 0\nAesthetic Quality: 0"},
                        default="Consistency: 1\nRealism: 2\nAesthetic Quality: 2")
    _, metrics = run_task(task, SolidDouble(size=8), {"judge": judge})
    v = values(metrics)
    assert metrics["details"]["n_scored"] == 1000 and v["culture"] == pytest.approx(0.65)
    assert v["chemistry"] == pytest.approx(0.65 * 99 / 100)
    assert v["overall"] == pytest.approx(0.4 * 0.65 + 0.167 * 0.65 + 0.133 * 0.65 + 0.2 * 0.65 + 0.1 * 0.6435)
    assert metrics["overall"].stderr > 0


@pytest.mark.skipif(not (REF / "verified").exists(), reason="needs ../shared/reference-data/wise/verified")
def test_real_verified_files_load_with_their_id_ranges():
    docs = WISE(data=str(REF / "verified"), profile="verified", judge="world_judge").docs()
    assert len(docs) == 1000
    assert {scoring.category_for_id(d["prompt_id"], "verified") for d in docs[400:520]} == {"TIME"}


def test_offline_errors_are_one_line(tmp_path, monkeypatch, judge_prompt):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as e:          # the judge prompt is checked before any generation
        WISE().docs()
    assert "\n" not in str(e.value) and "WISE_legacy/gpt_eval.py" in str(e.value) and "judge_prompt" in str(e.value)
    with pytest.raises(DataError) as e:
        WISE(judge_prompt=judge_prompt).docs()
    assert "\n" not in str(e.value) and "Yuwei-Niu/WISE" in str(e.value) and "--data" in str(e.value)
    with pytest.raises(DataError) as e:
        WISE(profile="verified", judge_prompt=judge_prompt).docs()
    assert "\n" not in str(e.value) and "data_verified" in str(e.value)
