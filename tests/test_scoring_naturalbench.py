"""NaturalBench extraction and group scores against the benchmark spec (§8.2-§8.4)."""

import pytest

from tasks.naturalbench.scoring import (
    build_prompt,
    check_answer_pattern,
    encode_answer,
    expand_group,
    extract_answer,
    group_ground_truth,
    group_scores,
    score_groups,
)

EXTRACTION = [
    ("Yes", "yes_no", 1),
    ("No.", "yes_no", 0),
    ("Yes, but no …", "yes_no", 1),
    ("No, yes", "yes_no", 0),
    ("I cannot tell", "yes_no", -1),
    ("nope", "yes_no", -1),
    ("yesterday", "yes_no", -1),
    ("A", "multiple_choice", 1),
    ("(B)", "multiple_choice", 0),
    ("The answer is B", "multiple_choice", 0),
    ("A dog", "multiple_choice", 1),
    ("Option C", "multiple_choice", -1),
    ("b", "multiple_choice", 0),
    ("It is a B", "multiple_choice", 1),
]


@pytest.mark.parametrize("text, qtype, expected", EXTRACTION)
def test_extraction(text, qtype, expected):
    assert extract_answer(text, qtype) == expected


GROUPS = [
    ([1, 0, 0, 1], {"Q_Acc": 1.0, "I_Acc": 1.0, "Acc": 1.0, "G_Acc": 1.0}),
    ([1, 1, 1, 1], {"Q_Acc": 0.0, "I_Acc": 0.0, "Acc": 0.5, "G_Acc": 0.0}),
    ([1, 0, 1, 1], {"Q_Acc": 0.5, "I_Acc": 0.5, "Acc": 0.75, "G_Acc": 0.0}),
    ([0, 1, 1, 0], {"Q_Acc": 0.0, "I_Acc": 0.0, "Acc": 0.0, "G_Acc": 0.0}),
    ([1, -1, 0, 1], {"Q_Acc": 0.5, "I_Acc": 0.5, "Acc": 0.75, "G_Acc": 0.0}),
]


@pytest.mark.parametrize("pred, expected", GROUPS)
def test_single_group(pred, expected):
    scores = group_scores([pred])
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value)


def test_three_groups_together():
    scores = group_scores([[1, 0, 0, 1], [1, 1, 1, 1], [1, 0, 1, 1]])
    assert scores["Q_Acc"] == pytest.approx(0.5)
    assert scores["I_Acc"] == pytest.approx(0.5)
    assert scores["Acc"] == pytest.approx(0.75)
    assert scores["G_Acc"] == pytest.approx(0.3333, abs=1e-4)
    assert scores["num_groups"] == 3


def test_unparsed_counted():
    assert group_scores([[1, -1, 0, 1]])["num_unparsed"] == 1


def test_prompts():
    assert build_prompt("Is it red?", "yes_no") == "Is it red?Please answer Yes or No."
    assert build_prompt("Is it red?", "yes_no", "lmms") == "Is it red? Please answer Yes or No."
    assert build_prompt("Which?", "multiple_choice", "lmms") == (
        "Which? Please output the letter corresponding to the correct option.")
    with pytest.raises(ValueError):
        build_prompt("Q", "open")


def _row(index, qtype="yes_no", answers=("Yes", "No", "No", "Yes")):
    # answers in sample order: (q0,i0), (q0,i1), (q1,i0), (q1,i1)
    return {
        "Index": index, "Question_Type": qtype, "Question_0": "Q0?", "Question_1": "Q1?",
        "Image_0_Question_0": answers[0], "Image_1_Question_0": answers[1],
        "Image_0_Question_1": answers[2], "Image_1_Question_1": answers[3],
    }


def test_ground_truth_read_from_columns():
    assert group_ground_truth(_row(0)) == (1, 0, 0, 1)
    assert group_ground_truth(_row(1, "multiple_choice", ("A", "B", "B", "A"))) == (1, 0, 0, 1)
    assert group_ground_truth(_row(2, answers=("yes", "yes", "no", "no"))) == (1, 1, 0, 0)
    assert encode_answer("B.", "multiple_choice") == 0
    with pytest.raises(ValueError):
        encode_answer("maybe", "yes_no")


def test_pattern_check_reports_deviations():
    rows = [_row(0), _row(1, answers=("No", "Yes", "Yes", "No")), _row(2, answers=("Yes", "No", "No", "??"))]
    deviations = check_answer_pattern(rows)
    assert [d["index"] for d in deviations] == [1, 2]
    assert deviations[0]["ground_truth"] == (0, 1, 1, 0)
    assert deviations[1]["ground_truth"] is None and deviations[1]["error"]
    assert check_answer_pattern([_row(0), _row(1, "multiple_choice", ("A", "B", "B", "A"))]) == []


def test_scores_use_the_answer_columns():
    # A group whose GT is inverted: answering it correctly must score 1, not 0.
    inverted = _row(0, answers=("No", "Yes", "Yes", "No"))
    result = score_groups([inverted], ["No", "Yes", "Yes", "No"])
    assert result["G_Acc"] == 1.0 and result["Acc"] == 1.0
    assert result["extracted"] == [[0, 1, 1, 0]]
    # The upstream implicit pattern would score the same answers 0.
    assert group_scores([[0, 1, 1, 0]])["G_Acc"] == 0.0


def test_score_groups_matches_official_on_standard_rows():
    rows = [_row(0), _row(1, "multiple_choice", ("A", "B", "B", "A")), _row(2)]
    outputs = ["Yes", "No", "No.", "Yes", "A", "B", "A", "A", "yes", "nope", "no", "Yes"]
    result = score_groups(rows, outputs)
    official = group_scores(result["extracted"])
    for key in ("Acc", "Q_Acc", "I_Acc", "G_Acc"):
        assert result[key] == pytest.approx(official[key])
    assert result["G_Acc"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        score_groups(rows, outputs[:-1])


def test_expand_group_order():
    samples = expand_group(_row(5), "lmms")
    assert [(s["question_index"], s["image_index"]) for s in samples] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [s["answer"] for s in samples] == ["Yes", "No", "No", "Yes"]
    assert samples[1]["image_key"] == "Image_1"
    assert samples[2]["prompt"] == "Q1? Please answer Yes or No."
