"""WISE scoring: worked examples of the benchmark spec (§6.6), parsing edge cases (§13), real prompt files."""
import base64
import json
from pathlib import Path

import pytest

from tasks.wise import parsing
from tasks.wise import scoring as w

REF_CANDIDATES = [Path(__file__).resolve().parents[1].parent / "shared" / "reference-data",
                  Path("/work/shared/reference-data")]
REF = next((p for p in REF_CANDIDATES if p.is_dir()), None)
needs_ref = pytest.mark.skipif(REF is None, reason="shared/reference-data not found next to the repository; "
                                                   "the real WISE prompt files are needed")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


@pytest.mark.parametrize("c, r, a, expected", [
    (2, 2, 2, 0.9999999999999999), (2, 1, 1, 0.85), (1, 1, 1, 0.5), (0, 2, 2, 0.3), (2, 0, 0, 0.7), (1, 2, 0, 0.55)])
def test_wiscore_examples(c, r, a, expected):
    assert w.wiscore(c, r, a) == pytest.approx(expected, abs=1e-12)
    if (c, r, a) == (2, 2, 2):
        assert w.wiscore(c, r, a) == 0.9999999999999999  # same float as the official expression


CATS = dict(zip(w.CATEGORIES, (0.5, 0.6, 0.7, 0.4, 0.5, 0.3)))


def test_weighted_overall_examples():
    assert round(w.weighted_overall(CATS, "legacy"), 4) == 0.5133
    janus = dict(zip(w.CATEGORIES, (0.30, 0.37, 0.49, 0.36, 0.42, 0.26)))
    assert round(w.weighted_overall(janus, "legacy"), 5) == 0.35096
    assert round(w.weighted_overall(CATS, "verified"), 10) == 0.50
    assert sum(w.WEIGHTS["legacy"].values()) == pytest.approx(1.0)
    assert sum(w.WEIGHTS["verified"].values()) == pytest.approx(1.0)


def test_weighted_overall_missing_category():
    partial = {k: v for k, v in CATS.items() if k != "TIME"}
    assert w.weighted_overall(partial, "legacy") is None
    expected = (0.4 * 0.5 + 0.133 * 0.7 + 0.1 * (0.4 + 0.5 + 0.3)) / (1 - 0.167)
    assert w.weighted_overall(partial, "legacy", renormalise=True) == pytest.approx(expected)


@pytest.mark.parametrize("text, scores, method", [
    ("Consistency: 2\nRealism: 1\nAesthetic Quality: 0", (2, 1, 0), "named"),
    ("**Consistency**: 1\n**Realism** 2\naesthetic quality:1", (1, 2, 1), "named"),
    ("Consistency: 0\nRealism: 0\nAesthetic Quality: 0\nConsistency: 2", (2, 0, 0), "named"),  # last wins
    ("2\n1\n0", (2, 1, 0), "bare"),
    ("Here you go:\n 1 \n2\n\n0\n", (1, 2, 0), "bare"),
    ("2\n1\n0\n1", (2, 1, 0), "bare"),            # three or more bare lines: the first three count
    ("2\r\n1\r\n0\r\n", (2, 1, 0), "bare"),        # "\r" before "\n" is whitespace around the digit
])
def test_legacy_parse_ok(text, scores, method):
    p = parsing.parse_legacy(text)
    assert p.ok and tuple(p.scores.values()) == scores and p.method == method and not p.reask


@pytest.mark.parametrize("text, error", [
    ("Consistency\uff1a2\nRealism\uff1a1\nAesthetic Quality\uff1a0", "no score lines"),  # full-width colon
    ("**Consistency:** 2\n**Realism:** 1\n**Aesthetic Quality:** 0", "no score lines"),  # colon inside bold
    ('{"Consistency": 2, "Realism": 1, "Aesthetic Quality": 0}', "no score lines"),  # JSON answers
    ("Consistency: 2\n1\n0\n1", "missing realism, aesthetic_quality"),  # partial match blocks the fallback
    ("Consistency: 5\nRealism: 1\nAesthetic Quality: 0", "out of range 0-2: consistency=5"),
    ("2\n1", "no score lines"),
    ("3\n1\n0", "no score lines"),
    ("2\r1\r0", "no score lines"),                  # the official (?m) breaks lines at "\n" only
    ("2\u20281\u20280", "no score lines"),
    ("2\x851\x850", "no score lines"),
    ("2\v1\v0", "no score lines"),
])
def test_legacy_parse_failures(text, error):
    p = parsing.parse_legacy(text)
    assert not p.ok and error in p.error
    # the official loop asks again unless it accepted the reply (it lets a score outside 0-2 through)
    assert p.reask == ("out of range" not in error)


@pytest.mark.parametrize("text, score", [
    ("Score: 1", 1), ("**Score**: 0", 0), ("score 1", 1), ("Score: 1\nScore: 0", 1),
    ("<think>Score: 0 maybe</think>\nScore: 1", 1), ("\n0\n", 0),
    ("<THINK>Score: 0</THINK>\nScore: 1", 0),        # the tag is case-sensitive: <THINK> is not removed
    ("<think>a\nb</think>\n\n1\n", 1), ("</think> Score: 1", 1),
])
def test_verified_parse_ok(text, score):
    p = parsing.parse_verified(text)
    assert p.ok and p.scores == {"score": score}


@pytest.mark.parametrize("text", [
    "Score: 10", "Score\uff1a1", "1\n0", "Score: 2", "", "<think>Score: 1</think>",
    "Answer<think>x</think>\n1",    # the block and the whitespace after it go: "Answer1" holds no score
    "Final</think>\n0",             # text before a stray </think> is kept: "Final0"
    "reasoning</think>1",           # "reasoning1"
])
def test_verified_parse_failures(text):
    p = parsing.parse_verified(text)
    assert not p.ok and p.reask


@pytest.mark.parametrize("text, cleaned", [
    ("Answer<think>x</think>\n1", "Answer1"), ("Final</think>\n0", "Final0"), ("<think>a</think> <think>b</think>ok", "ok"),
    ("<THINK>Score: 0</THINK>\nScore: 1", "<THINK>Score: 0</THINK>\nScore: 1"), ("  x </think>  y ", "x y"),
])
def test_verified_think_cleanup(text, cleaned):
    assert parsing.strip_think(text) == cleaned


def test_categories():
    assert [w.category_for_id(i) for i in (1, 400, 401, 567, 568, 700, 701, 801, 1000)] == [
        "CULTURE", "CULTURE", "TIME", "TIME", "SPACE", "SPACE", "BIOLOGY", "PHYSICS", "CHEMISTRY"]
    assert [w.category_for_id(i, "verified") for i in (520, 521, 640, 641, 760, 761, 880, 881)] == [
        "TIME", "SPACE", "SPACE", "BIOLOGY", "BIOLOGY", "PHYSICS", "PHYSICS", "CHEMISTRY"]
    assert w.category_for_id(0) is None and w.category_for_id(1001) is None
    assert w.normalise_category("Physical Knowledge") == "PHYSICS" and w.normalise_category("time") == "TIME"
    with pytest.raises(ValueError, match="unknown WISE protocol"):
        w.category_for_id(1, "v2")


def _full_scores(protocol):
    return {i: CATS[w.category_for_id(i, protocol)] for i in range(1, 1001)}


def test_overall_complete_and_refused():
    res = w.overall(_full_scores("legacy"), "legacy")
    assert round(res.value, 4) == 0.5133 and res.missing_prompt_ids == [] and res.category_counts["TIME"] == 167
    scores = _full_scores("legacy")
    scores[5] = None  # a parse failure: skipped, so Overall is refused
    del scores[999]
    scores[1234] = 1.0  # ids outside 1-1000 are ignored
    res = w.overall(scores, "legacy")
    assert res.value is None and res.missing_prompt_ids == [5, 999] and res.ignored_prompt_ids == [1234]
    assert res.category_scores["CULTURE"] == pytest.approx(0.5)
    renorm = w.overall(scores, "legacy", renormalise=True)
    assert round(renorm.value, 4) == 0.5133 and renorm.renormalised
    zeroed = w.overall(scores, "legacy", missing_as_zero=True)
    assert zeroed.value < 0.5133 and zeroed.category_scores["CULTURE"] == pytest.approx(0.5 * 399 / 400)
    no_time = {i: s for i, s in _full_scores("legacy").items() if not 401 <= i <= 567}
    res = w.overall(no_time, "legacy")
    assert res.value is None and res.missing_categories == ["TIME"]
    assert w.overall(_full_scores("verified"), "verified").value == pytest.approx(0.50)


def test_verified_overall_keeps_the_prompts_present_and_the_official_term_order():
    scores = _full_scores("verified")
    scores[5] = None                       # vllm_eval.py wrote no line for it: calculate_verified.py warns, goes on
    del scores[999]
    res = w.overall(scores, "verified")
    assert res.missing_prompt_ids == [5, 999] and res.value == pytest.approx(0.50)
    no_chem = {i: s for i, s in _full_scores("verified").items() if not 881 <= i <= 1000}
    assert w.overall(no_chem, "verified").value is None
    # calculate_verified.py adds six products in order; grouping the five 0.12 terms changes the last bit, and
    # with it the 2-decimal figure the script prints
    cats = {"CULTURE": 0.9675, "TIME": 0.275, "SPACE": 0.5, "BIOLOGY": 8 / 120, "PHYSICS": 11 / 120,
            "CHEMISTRY": 86 / 120}
    official = (0.4 * 0.9675 + 0.12 * 0.275 + 0.12 * 0.5 + 0.12 * (8 / 120) + 0.12 * (11 / 120)
                + 0.12 * (86 / 120))
    assert w.weighted_overall(cats, "verified") == official == 0.5850000000000001
    assert f"{w.weighted_overall(cats, 'verified'):.2f}" == "0.59"


def test_overall_with_row_categories():
    rows = [{"prompt_id": 10, "Category": "Biology"}, {"prompt_id": 11, "Category": "time"}]
    cat_of = w.categories_from_rows(rows)
    res = w.overall({10: 1.0, 11: 0.5}, "legacy", category_of=cat_of)
    assert res.value is None and set(res.missing_categories) == {"CULTURE", "SPACE", "PHYSICS", "CHEMISTRY"}
    res = w.overall({10: 1.0, 11: 0.5}, "legacy", category_of=cat_of, renormalise=True)
    assert res.value == pytest.approx((0.1 * 1.0 + 0.167 * 0.5) / 0.267)


def _row(pid, cat="Biology", **extra):
    return {"Prompt": f"p{pid}", "Explanation": "e", "Category": cat, "Subcategory": "s", "prompt_id": pid, **extra}


def test_load_prompts_formats_and_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([_row(2), _row(1)]))
    (tmp_path / "a_rewrite.json").write_text(json.dumps([_row(1)]))
    assert [r["prompt_id"] for r in w.load_prompts(tmp_path)] == [1, 2]
    hf = tmp_path / "hf.jsonl"
    hf.write_text("\n".join(json.dumps(_row(i, Hint="h")) for i in (3, 4)) + "\n")
    assert [r["Hint"] for r in w.load_prompts(hf)] == ["h", "h"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text(json.dumps([_row(1), {**_row(2), "prompt_id": "2"}]))
    with pytest.raises(ValueError, match=r"x\.json: item 1: prompt_id missing or not an integer"):
        w.load_prompts(bad / "x.json")
    (bad / "x.json").write_text(json.dumps([_row(1), _row(1)]))
    with pytest.raises(ValueError, match="duplicate prompt_id 1"):
        w.load_prompts(bad)
    (bad / "x.json").write_text(json.dumps([_row(1, cat="Geography")]))
    with pytest.raises(ValueError, match="unknown WISE category"):
        w.load_prompts(bad)
    with pytest.raises(FileNotFoundError):
        w.load_prompts(tmp_path / "nope.json")


@needs_ref
@pytest.mark.parametrize("protocol, sub", [("legacy", "legacy"), ("verified", "verified")])
def test_real_prompt_files(protocol, sub):
    rows = w.load_prompts(REF / "wise" / sub)
    assert [r["prompt_id"] for r in rows] == list(range(1, 1001))
    expected = {c: hi - lo + 1 for c, (lo, hi) in w.ID_RANGES[protocol].items()}
    by_category = {}
    for r in rows:
        cat = w.normalise_category(r["Category"])
        assert cat == w.category_for_id(r["prompt_id"], protocol)  # the id ranges agree with the Category field
        by_category[cat] = by_category.get(cat, 0) + 1
    assert by_category == expected
    if protocol == "legacy":
        assert expected == {"CULTURE": 400, "TIME": 167, "SPACE": 133, "BIOLOGY": 100, "PHYSICS": 100,
                            "CHEMISTRY": 100}
        subs = {}
        for r in rows:
            subs[r["Subcategory"]] = subs.get(r["Subcategory"], 0) + 1
        # The spec (after the paper) says 25 sub-domains; the files hold 27 distinct Subcategory strings.
        assert len(subs) == 27 and subs["Animal"] == 72 and subs["Plant"] == 71 and subs["Celebrity"] == 64
        assert subs["Longitudinal time"] == 100 and subs["Horizontal time"] == 67


# A made-up upstream-style script: same structure as the official one, none of its wording.
FAKE_SOURCE = '''
def build_evaluation_messages(prompt_data, image_base64):
    return [
        {"role": "system", "content": [{"type": "text", "text": "You are a strict judge {not a field}."}]},
        {"role": "user", "content": [
            {"type": "text", "text": f"""Rate it {{0-2}}.
PROMPT: "{prompt_data['Prompt']}"
EXPLANATION: "{prompt_data['Explanation']}"
Done."""},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_base64}"}},
        ]},
    ]
'''


def test_judge_prompt_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        w.judge_prompt("legacy", cache_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "PKU-YuanGroup/WISE@eb51174 WISE_legacy/gpt_eval.py" in msg and str(tmp_path) in msg
    with pytest.raises(FileNotFoundError, match="vllm_eval.py"):
        w.judge_prompt("verified", cache_dir=tmp_path)


def test_judge_prompt_from_cached_source_and_messages(tmp_path):
    target = tmp_path / "WISE_legacy" / "gpt_eval.py"
    target.parent.mkdir()
    target.write_text(FAKE_SOURCE)
    jp = w.judge_prompt("legacy", cache_dir=tmp_path)
    row = {"Prompt": "a {weird} prompt", "Explanation": "mooncakes", "prompt_id": 1}
    msgs = w.build_judge_messages(jp, row, PNG, "legacy")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"][0]["text"] == "You are a strict judge {not a field}."
    assert msgs[1]["content"][0]["text"] == 'Rate it {0-2}.\nPROMPT: "a {weird} prompt"\nEXPLANATION: "mooncakes"\nDone.'
    url = msgs[1]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == PNG
    assert len(jp.sha256) == 64
    with pytest.raises(ValueError, match="PNG"):
        w.build_judge_messages(jp, row, b"GIF89a", "legacy")


def test_judge_prompt_from_json(tmp_path):
    p = tmp_path / "judge.json"
    p.write_text(json.dumps({"system": None, "user": "Judge {Prompt} / {Explanation}. Answer Score: 0 or 1"}))
    jp = w.judge_prompt("verified", path=p)
    msgs = w.build_judge_messages(jp, {"Prompt": "x", "Explanation": "y"}, PNG, "verified")
    assert [m["role"] for m in msgs] == ["user"] and msgs[0]["content"][0]["text"].startswith("Judge x / y.")


def test_judge_prompt_from_format_style_source(tmp_path):
    src = tmp_path / "vllm_eval.py"
    src.write_text('RUBRIC = "Is {{it}} right? {prompt} | {explanation}\\nAnswer Score: 0 or 1"\n'
                   'def build(item, b64):\n'
                   '    return [{"role": "user", "content": [\n'
                   '        {"type": "text", "text": RUBRIC.format(prompt=item["Prompt"], explanation=item["Explanation"])},\n'
                   '        {"type": "image_url", "image_url": {"url": b64}}]}]\n')
    jp = w.judge_prompt("verified", path=src)
    assert jp.system_template is None
    assert jp.render({"Prompt": "P", "Explanation": "E"}) == "Is {it} right? P | E\nAnswer Score: 0 or 1"
