"""VQA accuracy against the worked examples of the benchmark spec (§1.4, §1.5, §13)."""

import pytest

from tasks.vqav2.contractions import CONTRACTIONS
from tasks.vqav2.scoring import (
    PERIOD_STRIP_MAX_REMOVALS,
    aggregate_vqa,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    to_percent,
    vqa_accuracy,
    vqa_score_details,
)

# (10 GT answers, prediction, official, lmms-eval) from the §1.4 table.
TABLE_1_4 = [
    (["yes"] * 10, "yes", 1.0, 1.0),
    (["yes"] * 10, "Yes", 0.0, 1.0),
    (["yes"] * 10, "Yes.", 0.0, 1.0),
    (["yes"] * 9 + ["yeah"], "Yes.", 1.0, 1.0),
    (["red"] + ["blue"] * 9, "red", 0.3, 0.3),
    (["red"] * 2 + ["blue"] * 8, "red", 0.6, 0.6),
    (["dog"] * 3 + ["cat"] * 7, "dog", 0.9, 0.9),
    (["dog"] * 4 + ["cat"] * 6, "dog", 1.0, 1.0),
    (["2"] * 5 + ["two"] * 5, "Two.", 1.0, 1.0),
    (["a dog"] * 6 + ["dog"] * 4, "the dog", 1.0, 1.0),
    (["none"] * 4 + ["0"] * 6, "zero", 1.0, 1.0),
    (["12,000"] * 10, "12000", 0.0, 1.0),
    (["t-shirt"] * 9 + ["shirt"], "t shirt", 1.0, 1.0),
    (["t-shirt"] * 9 + ["shirt"], "tshirt", 0.0, 0.0),
    (["doesn't know"] * 5 + ["unknown"] * 5, "doesnt know", 1.0, 1.0),
]


@pytest.mark.parametrize("gts, pred, official, lmms", TABLE_1_4)
def test_table_1_4_official(gts, pred, official, lmms):
    assert vqa_accuracy(pred, gts, "official") == pytest.approx(official)


@pytest.mark.parametrize("gts, pred, official, lmms", TABLE_1_4)
def test_table_1_4_lmms(gts, pred, official, lmms):
    assert vqa_accuracy(pred, gts, "lmms") == pytest.approx(lmms)


@pytest.mark.parametrize("gts, pred, official, lmms", TABLE_1_4)
def test_table_1_4_answer_dicts(gts, pred, official, lmms):
    # HF rows carry answer dicts; answer_id makes identical strings distinct.
    dicts = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(gts)]
    assert vqa_accuracy(pred, dicts) == pytest.approx(official)
    assert vqa_accuracy(pred, dicts, "lmms") == pytest.approx(lmms)


# §1.4 normalisation examples: official = lmms-eval for all of them.
NORMALISATION = [
    ("Two dogs.", "2 dogs"),
    ("It's 3.5 m", "it's 3.5 m"),
    ("a,b", "b"),
    ("1,000 dollars", "1000 dollars"),
    ("Don't know!", "don't know"),
    ("(left)", "left"),
    ("the cat-dog", "cat dog"),
    ("e.g. an apple", "eg apple"),
]


@pytest.mark.parametrize("profile", ["official", "lmms"])
@pytest.mark.parametrize("text, expected", NORMALISATION)
def test_normalisation_examples(text, expected, profile):
    assert normalize_answer(text, profile) == expected


@pytest.mark.parametrize("k, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)])
def test_closed_form_min_one_point_three_k(k, expected):
    gts = ["x"] * k + ["y"] * (10 - k)
    assert vqa_accuracy("x", gts) == pytest.approx(expected)


def test_plain_strings_use_index_based_leave_one_out():
    # §1.5-2: `!=` on plain strings would give 0.0 and 0.533 here.
    assert vqa_accuracy("yes", ["yes"] * 10) == 1.0
    assert vqa_accuracy("red", ["red"] * 2 + ["blue"] * 8) == pytest.approx(0.6)


def test_comma_runs_differ_between_profiles():
    # §13: "12,,000" -> "12 000" officially, "12000" in lmms-eval.
    assert normalize_answer("12,,000", "official") == "12 000"
    assert normalize_answer("12,,000", "lmms") == "12000"
    gts = ["12000"] * 5 + ["twelve thousand"] * 5
    assert vqa_accuracy("12,,000", gts, "official") == 0.0
    assert vqa_accuracy("12,,000", gts, "lmms") == 1.0


def test_period_regex_keeps_periods_before_digits():
    assert process_punctuation("3.") == "3"
    assert process_punctuation("3.5") == "3.5"
    assert process_punctuation("a.b.c") == "abc"


def test_period_removal_is_capped_at_32():
    assert PERIOD_STRIP_MAX_REMOVALS == 32
    assert process_punctuation("." * 40) == "." * 8
    assert process_punctuation("." * 40, "lmms") == "." * 8


def test_punctuation_test_looks_at_original_text():
    # After ";" becomes a space, " (" exists in the processed text but not in the
    # original, so "(" is spaced rather than deleted.
    assert process_punctuation("x;(y(z") == "x  y z"
    assert normalize_answer("x;(y(z") == "x y z"


def test_comma_rule_deletes_every_punctuation_mark():
    assert process_punctuation("a-b 1,000") == "ab 1000"
    assert normalize_answer("1,000 (approx)") == "1000 approx"


def test_apostrophes_and_colons_untouched():
    assert process_punctuation("it's 10:30") == "it's 10:30"


def test_digit_article_details():
    assert process_digit_article("None of THE Ten") == "0 of 10"
    assert process_digit_article("a b an c") == "b c"
    assert process_digit_article("Im Ive whats") == "im ive what's"  # upper-case keys never fire


def test_contractions_map_is_the_official_one():
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["dont"] == "don't"
    assert CONTRACTIONS["somebody'd"] == "somebodyd"
    assert CONTRACTIONS["twas"] == "'twas"


def test_whitespace_cleaning_before_the_agreement_test():
    assert vqa_accuracy(" yes\n", ["yes"] * 10) == 1.0
    assert vqa_accuracy("yes", ["yes\t"] * 10) == 1.0


def test_details_expose_intermediate_values():
    d = vqa_score_details("Two.", ["2"] * 5 + ["two"] * 5)
    assert d["normalized"] is True
    assert d["prediction"] == "2"
    assert d["gt_answers"] == ["2"] * 10
    assert d["num_matches"] == 10
    assert vqa_score_details("Yes", ["yes"] * 10)["normalized"] is False
    assert vqa_score_details("Yes", ["yes"] * 10, "lmms")["normalized"] is True


def test_errors():
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])
    with pytest.raises(ValueError):
        vqa_accuracy("yes", ["yes"], profile="llava")
    with pytest.raises(TypeError):
        vqa_accuracy("yes", [1, 2])


def test_aggregation_by_type():
    records = [
        {"accuracy": 1.0, "answer_type": "yes/no", "question_type": "is the"},
        {"accuracy": 0.3, "answer_type": "other", "question_type": "what color"},
        {"accuracy": 0.6, "answer_type": "other", "question_type": "what color"},
        {"accuracy": 0.0, "answer_type": "number", "question_type": "how many"},
    ]
    agg = aggregate_vqa(records)
    assert agg["overall"]["n"] == 4
    assert agg["overall"]["accuracy"] == pytest.approx(0.475)
    assert agg["overall"]["percent"] == 47.5
    assert agg["per_answer_type"]["other"]["accuracy"] == pytest.approx(0.45)
    assert agg["per_answer_type"]["other"]["percent"] == 45.0
    assert agg["per_question_type"]["how many"] == {"n": 1, "accuracy": 0.0, "percent": 0.0}
    assert to_percent(2 / 3) == 66.67
    with pytest.raises(ValueError):
        aggregate_vqa([])
