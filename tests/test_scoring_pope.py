"""POPE extraction and metrics against the benchmark spec (§3.3, §3.4, §13)."""

import pytest

from tasks.pope.scoring import (
    extract_yes_no,
    label_to_int,
    mean_f1,
    metrics_from_counts,
    pope_metrics,
    pope_split_metrics,
)

EXTRACTION = [
    ("Yes", "yes"),
    ("No", "no"),
    ("No, there is no dog.", "no"),
    ("Yes, there is a dog in the image.", "yes"),
    ("There is not a dog.", "no"),
    ("NO", "yes"),
    ("Nope.", "yes"),
    ("I don't think so.", "yes"),
    ("Not sure", "yes"),
    ("The image shows a cat. No dog is present.", "yes"),
    ("It is not clear,", "no"),
]


@pytest.mark.parametrize("text, expected", EXTRACTION)
def test_official_extraction(text, expected):
    assert extract_yes_no(text) == expected


def test_label_encoding():
    assert label_to_int("no") == 0
    assert label_to_int("yes") == 1
    assert label_to_int("No") == 1  # only the exact string "no" is negative


def _from_counts(tp, fp, tn, fn):
    preds = ["Yes"] * tp + ["Yes"] * fp + ["No"] * tn + ["No"] * fn
    labels = ["yes"] * tp + ["no"] * fp + ["no"] * tn + ["yes"] * fn
    return preds, labels


def test_llava_issue_626_random_split():
    expected = {"accuracy": 0.880412, "precision": 0.974465, "recall": 0.788667,
                "f1": 0.871776, "yes_ratio": 0.417182}
    from_counts = metrics_from_counts(1183, 31, 1379, 317)
    from_texts = pope_metrics(*_from_counts(1183, 31, 1379, 317))
    for metrics in (from_counts, from_texts):
        assert metrics["n"] == 2910
        for key, value in expected.items():
            assert metrics[key] == pytest.approx(value, abs=1e-6)
    assert from_counts["f1"] == pytest.approx(0.8717759764185703, rel=1e-12)


def test_llava_issue_626_mean_f1():
    f1s = [0.8717759764185703, 0.8628738147337709, 0.8450000000000001]
    assert mean_f1(f1s) == pytest.approx(0.859883, abs=1e-6)


def test_small_hand_case():
    m = pope_metrics(*_from_counts(3, 1, 4, 2))
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["n"]) == (3, 1, 4, 2, 10)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(0.6667, abs=1e-4)
    assert m["yes_ratio"] == pytest.approx(0.4)


PREDS_5 = ["Yes", "no", "Yes.", "No", "yes"]
GT_5 = ["yes", "yes", "yes", "no", "no"]


def test_five_samples_official():
    m = pope_metrics(PREDS_5, GT_5, "official")
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx(0.6667, abs=1e-4)
    assert m["recall"] == pytest.approx(0.6667, abs=1e-4)
    assert m["f1"] == pytest.approx(0.6667, abs=1e-4)
    assert m["yes_ratio"] == pytest.approx(0.6)


def test_five_samples_lmms():
    m = pope_metrics(PREDS_5, GT_5, "lmms")
    assert m["accuracy"] == pytest.approx(0.4)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    # lmms-eval prints the ground-truth ratio; the predicted ratio is reported separately.
    assert m["lmms_reported_yes_ratio"] == pytest.approx(0.6)
    assert m["yes_ratio"] == pytest.approx(0.4)
    assert m["n_not_yes_no"] == 1


def test_no_yes_prediction_leaves_precision_undefined():
    # §13: the official script raises ZeroDivisionError here.
    m = pope_metrics(["No", "no", "No."], ["yes", "no", "no"])
    assert m["precision"] is None
    assert m["f1"] is None
    assert m["recall"] == 0.0
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == 0.0


def test_zero_precision_and_recall_leaves_f1_undefined():
    m = metrics_from_counts(tp=0, fp=2, tn=0, fn=2)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] is None
    assert m["accuracy"] == 0.0
    assert metrics_from_counts(0, 0, 0, 0)["accuracy"] is None


def test_lmms_guards_return_zero():
    m = pope_metrics(["no", "maybe"], ["yes", "no"], "lmms")
    assert m["precision"] == 0 and m["recall"] == 0 and m["f1"] == 0


def test_split_metrics_and_headline():
    records = []
    for split, counts in {"random": (3, 1, 4, 2), "popular": (4, 1, 4, 1), "adversarial": (2, 2, 3, 3)}.items():
        preds, labels = _from_counts(*counts)
        records += [(split, p, g) for p, g in zip(preds, labels)]
    out = pope_split_metrics(records)
    assert set(out["splits"]) == {"random", "popular", "adversarial"}
    f1s = [out["splits"][s]["f1"] for s in ("random", "popular", "adversarial")]
    assert out["mean_f1"] == pytest.approx(sum(f1s) / 3)
    assert out["all"]["n"] == 30
    assert (out["all"]["tp"], out["all"]["fp"], out["all"]["tn"], out["all"]["fn"]) == (9, 4, 11, 6)
    assert mean_f1([0.5, None]) is None


def test_errors():
    with pytest.raises(ValueError):
        pope_metrics(["yes"], ["yes", "no"])
    with pytest.raises(ValueError):
        pope_metrics(["yes"], ["yes"], profile="vlmevalkit")
