"""MMMU parsers and aggregation against the benchmark spec (§2.2-§2.4, §13)."""

import math
import random

import pytest

from tasks.mmmu.scoring import (
    DOMAIN_CAT2SUB_CAT,
    SUBJECT_TO_DISCIPLINE,
    aggregate,
    build_prompt,
    eval_multi_choice,
    eval_open,
    extract_numbers,
    get_key_subresponses,
    get_multi_choice_info,
    instance_weighted_accuracy,
    make_official_rng,
    normalize_str,
    parse_gold,
    parse_multi_choice_response,
    parse_open_response,
    score_sample,
    subject_from_id,
)

OPTIONS = ["mitochondria", "nucleus", "ribosome", "golgi apparatus"]
INDEX2ANS, ALL_CHOICES = get_multi_choice_info(OPTIONS)

# (response, official, lmms-eval) from the §2.4 table.
MC_TABLE = [
    ("B", "B", "B"),
    ("(B)", "B", "B"),
    ("B.", "B", "B"),
    ("The answer is (C).", "C", "C"),
    ("Answer: D", "D", "D"),
    ("I think A is wrong, the answer is C", "C", "C"),
    ("The answer is B because A and C are wrong.", "C", "C"),
    ("(A) or (B), most likely (B)", "B", "B"),
    ("The organelle responsible is the ribosome in this cell", "C", "C"),
]


@pytest.mark.parametrize("profile, column", [("official", 1), ("lmms", 2)])
@pytest.mark.parametrize("row", MC_TABLE)
def test_mc_table(row, profile, column):
    parsed = parse_multi_choice_response(row[0], ALL_CHOICES, INDEX2ANS, random.Random(0), profile)
    assert parsed.choice == row[column]
    assert parsed.random_fallback is False


def test_dna_is_random_officially_and_a_in_lmms():
    parsed = parse_multi_choice_response("The answer is DNA.", ALL_CHOICES, INDEX2ANS, make_official_rng())
    assert parsed.random_fallback is True
    assert parsed.choice == random.Random(42).choice(ALL_CHOICES)
    lmms = parse_multi_choice_response("The answer is DNA.", ALL_CHOICES, INDEX2ANS, None, "lmms")
    assert lmms == ("A", False)


def test_fallback_without_rng_reports_unparsed():
    assert parse_multi_choice_response("no idea", ALL_CHOICES, INDEX2ANS, None) == (None, True)


def test_lmms_letter_dot_fallback():
    # No "(L)", " L " or "L " anywhere, but "C." is present.
    assert parse_multi_choice_response("see C.x", ALL_CHOICES, INDEX2ANS, None, "lmms").choice == "C"
    assert parse_multi_choice_response("see C.x", ALL_CHOICES, INDEX2ANS, None).random_fallback


def test_content_match_needs_more_than_five_words():
    assert parse_multi_choice_response("it is the ribosome", ALL_CHOICES, INDEX2ANS, None) == (None, True)


def test_ties_go_to_the_first_candidate():
    index2ans = {"A": "cell", "B": "cell"}
    parsed = parse_multi_choice_response("this is clearly the cell here", ["A", "B"], index2ans, None)
    assert parsed.choice == "A"


# (response, gold, parsed preds, correct) from the §2.4 open-answer table.
OPEN_TABLE = [
    ("36 watts", "30", ["36 watts", 36.0], False),
    ("The answer is 30.", "30", [30.0], True),
    ("The final answer is 1,000", "1000", [1000.0, 0.0], True),
    ("Therefore x = 2.5", "2.50", [2.5], True),
    ("The answer is c", "C", [" c", "c "], True),
    ("3.43", ["24/7", "3.429"], [3.43], True),
    ("1.2e3", "1200", [1200.0, 1.0, 3.0], True),
]


@pytest.mark.parametrize("response, gold, preds, correct", OPEN_TABLE)
def test_open_table(response, gold, preds, correct):
    parsed = parse_open_response(response)
    assert sorted(map(str, parsed)) == sorted(map(str, preds))
    assert eval_open(gold, parsed) is correct


@pytest.mark.parametrize("profile", ["official", "lmms"])
def test_open_answer_not_scored_by_character(profile):
    # lmms-eval issue #1436 would make this Wrong; it must be Correct in both profiles.
    result = score_sample("30", "open", "[]", "30", None, profile)
    assert result["correct"] is True


def test_list_gold_stored_as_string():
    assert parse_gold("['24/7', '3.429']") == ["24/7", "3.429"]
    assert parse_gold("[not a list") == "[not a list"
    assert parse_gold("B") == "B"
    assert score_sample("3.43", "open", "[]", "['24/7', '3.429']", None)["correct"] is True
    assert score_sample("Tampa", "open", "[]", "['Tampa', 'Florida']", None)["correct"] is True
    assert eval_multi_choice(["A", "B"], "B") and not eval_multi_choice("A", "B")


# §13 edge cases of the open-answer parser.
def test_empty_tail_replaced_by_next_indicator():
    # "is " leaves an empty tail; "answer " then replaces it although it is longer.
    assert get_key_subresponses("the answer is \nx") == ["is"]


def test_empty_tail_last_drops_the_subresponse():
    # "so " gives "result", then "result " gives "" which wins; the sub-response is dropped.
    assert get_key_subresponses("So result \nX") == ["so result \nx"]


def test_no_indicator_falls_back_to_stripped_lowercased_response():
    assert get_key_subresponses("  Paris.  ") == ["paris"]


def test_split_is_effectively_newline_only():
    assert get_key_subresponses("The value is 3. The unit is m") == ["m"]
    assert get_key_subresponses("x is 3\ny is 4") == ["3", "4"]


def test_equals_only_in_last_subresponse():
    assert get_key_subresponses("a = 1\nb = 2") == ["2"]


def test_number_glued_to_unit_is_not_extracted():
    parsed = parse_open_response("the answer is 10kg")
    assert parsed == ["10kg"]
    assert eval_open("10", parsed) is False


def test_number_quirks():
    assert set(parse_open_response("12,34")) == {1234.0, 34.0}
    assert set(parse_open_response("2.5e3m")) == {"2.5e3m", 2500.0, 2.0}
    # The simple pattern also picks the "000" group and the exponent digit.
    assert extract_numbers("1,000 and 2.5 and 3e2") == ["1,000", "3e2", "000", "2.5", "2"]
    assert normalize_str("1_000") == [1000.0]
    assert normalize_str("inf") == [math.inf]
    assert math.isnan(normalize_str("nan")[0])
    assert normalize_str(" X ") == [" x", "x "]
    assert normalize_str("3.14159") == [3.14]


def test_string_gold_is_substring_match():
    assert eval_open("mgs", ["the product is mgs"]) is True
    assert eval_open(["$MgS$", "MgS"], parse_open_response("The answer is MgS")) is True
    assert eval_open("30", ["30 watts"]) is False  # float gold never matches a string


def test_prompts():
    q, opts = "Which organelle?", "['o1', 'o2']"
    assert build_prompt(q, opts, "multiple-choice") == (
        "Which organelle?\n(A) o1\n(B) o2\n\nAnswer with the option's letter from the given choices directly."
    )
    assert build_prompt(q, opts, "multiple-choice", "lmms") == (
        "Which organelle?\nA. o1\nB. o2\n\nAnswer with the option's letter from the given choices directly."
    )
    assert build_prompt(q, "[]", "open") == "Which organelle?\nAnswer the question using a single word or phrase."
    assert build_prompt(q, "[]", "open", "lmms") == (
        "Which organelle?\n\nAnswer the question using a single word or phrase."
    )


def test_subjects_and_disciplines():
    assert len(SUBJECT_TO_DISCIPLINE) == 30
    sizes = {d: 30 * len(s) for d, s in DOMAIN_CAT2SUB_CAT.items()}
    assert sizes == {"Art and Design": 120, "Business": 150, "Science": 150, "Health and Medicine": 150,
                     "Humanities and Social Science": 120, "Tech and Engineering": 210}
    assert subject_from_id("validation_Art_Theory_12") == "Art_Theory"
    assert subject_from_id("validation_Diagnostics_and_Laboratory_Medicine_3") == (
        "Diagnostics_and_Laboratory_Medicine")


def test_aggregation_example():
    # §2.4: Art 0.5 (n=30), Math 0.2 (n=30), Physics 0.3 (n=10) -> 24/70.
    results = {"Art": {"acc": 0.5, "num": 30}, "Math": {"acc": 0.2, "num": 30}, "Physics": {"acc": 0.3, "num": 10}}
    assert instance_weighted_accuracy(results) == pytest.approx(0.342857, abs=1e-6)
    samples = ([{"subject": "Art", "correct": i < 15} for i in range(30)]
               + [{"subject": "Math", "correct": i < 6} for i in range(30)]
               + [{"id": f"validation_Physics_{i}", "correct": i < 3} for i in range(10)])
    agg = aggregate(samples)
    assert agg["overall"]["num"] == 70
    assert agg["overall"]["acc"] == pytest.approx(0.342857, abs=1e-6)
    assert agg["subjects"]["Physics"] == {"num": 10, "acc": pytest.approx(0.3)}
    assert agg["disciplines"]["Art and Design"]["acc"] == pytest.approx(0.5)
    assert agg["disciplines"]["Science"] == {"num": 40, "acc": pytest.approx(0.225)}
    assert "Business" not in agg["disciplines"]
    assert instance_weighted_accuracy({}) is None


def test_score_sample_mc_reports_fallback():
    rng = make_official_rng()
    result = score_sample("no idea", "multiple-choice", str(OPTIONS), "A", rng)
    assert result["random_fallback"] is True and result["parsed_pred"] in ALL_CHOICES
    result = score_sample("(B)", "multiple-choice", OPTIONS, "B", rng)
    assert result == {"parsed_pred": "B", "correct": True, "random_fallback": False}
