"""MMBench extraction and CircularEval against the benchmark spec (§4.2-§4.4, §13)."""

import math
import random

import pytest

from tasks.mmbench.scoring import (
    build_choices,
    build_prompt_lmms,
    build_prompt_vlmevalkit,
    can_infer,
    can_infer_option,
    can_infer_text,
    circular_eval,
    circular_eval_with_random_fallback,
    random_fallback_options,
)

CHOICES = {"A": "teddy bear", "B": "rabbit", "C": "cat", "D": "dog"}

# (answer, VLMEvalKit, lmms-eval) from the §4.4 table; None stands for False.
TABLE_4_4 = [
    ("A", "A", "A"),
    ("B.", "B", "B"),
    ("(C)", "C", "C"),
    ("The answer is D.", "D", "D"),
    ("a cat", "C", "C"),
    ("dog", "D", "D"),
    ("I would say C or D", None, None),
    ("rabbit or cat", None, None),
    ("The correct answer is **B**. Here's why: A is wrong", "B", None),
    ("Cannot determine the answer", "Z", None),
]


@pytest.mark.parametrize("profile, column", [("official", 1), ("lmms", 2)])
@pytest.mark.parametrize("row", TABLE_4_4)
def test_table_4_4(row, profile, column):
    assert can_infer(row[0], dict(CHOICES), profile) == row[column]


def test_standalone_z_without_option_letter():
    assert can_infer_option("Z", CHOICES) == "Z"
    assert can_infer_option("My answer: Z", CHOICES) == "Z"
    assert can_infer_option("Z or B", CHOICES) == "B"


def test_answer_is_pattern_without_word_boundary():
    # §13: case-insensitive letter, no word boundary.
    assert can_infer_option("The answer is a dog", CHOICES) == "A"
    assert can_infer("The answer is a dog", CHOICES) == "A"


def test_answer_is_pattern_with_several_letters():
    assert can_infer_option("A and C look close, but the answer is C", CHOICES) == "C"


def test_single_letter_must_be_among_last_four_tokens():
    assert can_infer_option("B is my pick for this one here", CHOICES) is None
    assert can_infer_option("My pick is B for sure", CHOICES) == "B"


def test_refusal_and_api_failure():
    assert can_infer_option("I'm sorry, but without the image provided I cannot", CHOICES) == "Z"
    assert can_infer_option("Failed to obtain answer via API", CHOICES) is None


def test_verbose_environment_variable_is_ignored(monkeypatch):
    # VLMEvalKit returns False here when VERBOSE is set; the score must not depend on it.
    monkeypatch.setenv("VERBOSE", "1")
    assert can_infer_option("I think A is right", CHOICES) == "A"


def test_text_match_length_limit_is_official_only():
    long_answer = "cat " * 30
    assert can_infer_text(long_answer, CHOICES) is None
    assert can_infer_text(long_answer, CHOICES, "lmms") == "C"


def test_choices_not_mutated():
    choices = {"A": "Teddy Bear", "B": "Rabbit"}
    assert can_infer_text("a teddy bear", choices) == "A"
    assert choices == {"A": "Teddy Bear", "B": "Rabbit"}


def test_lmms_quirks():
    assert can_infer_option("E", {"A": "x", "B": "y"}, "lmms") == "E"  # letters are always A-E
    assert can_infer_option("Answer: (B).", CHOICES, "lmms") == "B"
    assert can_infer_option("A is the answer here", CHOICES, "lmms") is None  # "A" might be an article


def test_build_choices():
    row = {"A": "x", "B": "y", "C": "nan", "D": float("nan"), "E": None}
    assert build_choices(row) == {"A": "x", "B": "y"}
    assert build_choices(row, "lmms") == {"A": "x", "B": "y", "C": "nan"}


def _rows(question, answers, preds, category="cat1", l2="l2a", options=CHOICES):
    rows = []
    for k, (answer, pred) in enumerate(zip(answers, preds)):
        row = {"index": question + k * 1_000_000, "answer": answer, "prediction": pred,
               "category": category, "L2-category": l2}
        row.update(options)
        rows.append(row)
    return rows


def test_circular_one_wrong_pass_gives_zero():
    rows = _rows(7, ["A", "B", "C", "D"], ["A", "B", "C", "A"])
    out = circular_eval(rows)
    assert out["n_questions"] == 1 and out["overall"] == 0.0
    assert out["n_passes"] == 4
    assert sum(p["correct"] for p in out["questions"][0]["passes"]) / 4 == 0.75


def test_circular_three_questions():
    rows = (_rows(1, ["A", "B"], ["A", "B"], "c1", "x")
            + _rows(2, ["C", "D"], ["C", "C"], "c1", "x")
            + _rows(3, ["D", "A"], ["(D)", "The answer is A."], "c2", "y"))
    out = circular_eval(reversed(rows))
    assert [q["hit"] for q in out["questions"]] == [1, 0, 1]
    assert out["overall_percent"] == pytest.approx(66.67, abs=0.005)
    assert out["per_category"]["c1"] == {"n": 2, "acc": 0.5}
    assert out["per_l2_category"]["y"] == {"n": 1, "acc": 1.0}


def test_circular_counts_unparsed_and_refusals():
    rows = _rows(5, ["A", "B", "C"], ["A", "no idea", "Cannot determine the answer"])
    rows += _rows(9, ["A", "B"], ["A", "B"])[1:]  # pass 1 only: no pass-0 row
    out = circular_eval(rows)
    assert out["n_questions"] == 1 and out["overall"] == 0.0
    assert out["n_unparsed_passes"] == 1
    assert out["n_refusal_passes"] == 1
    assert out["n_orphan_groups"] == 1
    assert out["n_random_fallback"] == 0


def test_circular_string_index_and_lowercase_l2_key():
    rows = [{"index": "3", "answer": "A", "prediction": "A", "A": "x", "B": "y",
             "category": "c", "l2-category": "l"}]
    out = circular_eval(rows, "lmms")
    assert out["overall"] == 1.0 and out["per_l2_category"] == {"l": {"n": 1, "acc": 1.0}}


def test_random_fallback_is_opt_in_and_counted():
    rows = _rows(4, ["A", "B"], ["???", "!!!"])
    assert circular_eval(rows)["n_random_fallback"] == 0
    out1 = circular_eval_with_random_fallback(rows, random.Random(7))
    out2 = circular_eval_with_random_fallback(rows, random.Random(7))
    assert out1["n_random_fallback"] == 2
    assert [p["pred"] for p in out1["questions"][0]["passes"]] == [p["pred"] for p in out2["questions"][0]["passes"]]
    assert all(p["random_fallback"] for p in out1["questions"][0]["passes"])
    assert random_fallback_options(CHOICES) == ["A", "B", "C", "D", "Z"]
    assert random_fallback_options({"A": "x", "B": "y"}, "lmms") == ["A", "B", "C", "D", "E"]


def test_prompt_vlmevalkit():
    row = {"question": "What is it?", "hint": "Look closely.", "A": "cat", "B": "dog", "C": float("nan")}
    assert build_prompt_vlmevalkit(row) == (
        "Hint: Look closely.\nQuestion: What is it?\nOptions:\nA. cat\nB. dog\n"
        "Please select the correct answer from the options above. \n"
    )
    row["hint"] = "nan"
    assert build_prompt_vlmevalkit(row).startswith("Question: What is it?\n")


def test_prompt_lmms():
    row = {"question": "What is it?", "hint": "Look closely.", "A": "cat", "B": "dog", "C": "nan", "D": None}
    assert build_prompt_lmms(row) == (
        "Look closely. What is it? There are several options:\nA. cat\nB. dog"
        "\n\nAnswer with the option's letter from the given choices directly."
    )
    row["hint"] = math.nan
    assert build_prompt_lmms(row).startswith("What is it? There are several options:\nA. cat")
