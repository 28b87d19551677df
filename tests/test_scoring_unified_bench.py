"""UnifiedBench (Protocol-1) scoring: the spec's worked examples (§7.3) and failure handling."""
import numpy as np
import pytest

from tasks.unified_bench import scoring as ub


def test_cosine_example_and_normalisation():
    assert ub.cosine_similarity([1, 0], [0.6, 0.8]) == pytest.approx(0.6)
    assert ub.cosine_similarity([10, 0], [3, 4]) == pytest.approx(0.6)  # scale does not matter
    rows = ub.cosine_similarity(np.array([[1, 0], [0, 2]]), np.array([[0.6, 0.8], [0, 5]]))
    assert rows == pytest.approx([0.6, 1.0])
    # UAE normalises with F.normalize (x / max(||x||, 1e-12)): an all-zero embedding has cosine 0, no error
    assert ub.cosine_similarity([0, 0], [1, 0]) == 0.0 and ub.cosine_similarity([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert list(ub.cosine_similarity(np.array([[0, 0], [3, 4]]), np.array([[1, 0], [3, 4]]))) == pytest.approx([0, 1])
    assert ub.cosine_similarity([1e-13, 0], [1, 0]) == pytest.approx(0.1)    # below eps: divided by eps, as torch
    with pytest.raises(ValueError, match="equal-shaped"):
        ub.cosine_similarity([1, 0], [1, 0, 0])


def test_dreamsim_distance_to_similarity():
    assert ub.dreamsim_similarity(0.3) == pytest.approx(0.7)
    assert ub.dreamsim_similarity([0.30, 0.50, None]) == pytest.approx([0.7, 0.5, None])


def test_worked_example_67_5():
    sims = {"clip": [0.80, 0.60], "siglip": [0.90, 0.70], "dinov2": [0.50, 0.70],
            "dreamsim": ub.dreamsim_similarity([0.30, 0.50])}
    res = ub.aggregate(sims, "unigame")
    assert {b: round(p["score"], 6) for b, p in res["per_backbone"].items()} == {
        "clip": 70.0, "siglip": 80.0, "dinov2": 60.0, "dreamsim": 60.0}
    assert res["overall"] == pytest.approx(67.5) and res["overall_fraction"] == pytest.approx(0.675)
    assert res["backbone_set"] == "unigame" and res["n_images"] == 2 and res["n_failed"] == 0


def test_uae_table2_janus_pro():
    table = {"clip": 88.72, "longclip": 93.45, "dinov2": 78.30, "dinov3": 70.61}
    assert round(ub.overall_from_scores(table, "uae"), 2) == 82.77
    with pytest.raises(ValueError, match="siglip"):
        ub.overall_from_scores(table, "unigame")


def test_failed_round_trips_zero_or_excluded():
    sims = {"clip": {"0.jpg": 0.8, "1.jpg": None}, "longclip": [0.6, None], "dinov2": [0.4, float("nan")],
            "dinov3": [1.0, None]}
    zero = ub.aggregate(sims, "uae")
    assert zero["per_backbone"]["clip"]["score"] == pytest.approx(40.0)
    assert zero["n_failed"] == 1 and zero["per_backbone"]["dinov2"]["n_failed"] == 1
    assert zero["overall"] == pytest.approx((40 + 30 + 20 + 50) / 4) and zero["failure_mode"] == "zero"
    excl = ub.aggregate(sims, "uae", failure_mode="exclude")
    assert excl["per_backbone"]["clip"]["n_used"] == 1
    assert excl["overall"] == pytest.approx((80 + 60 + 40 + 100) / 4) and excl["failure_mode"] == "exclude"


def test_backbone_set_must_match():
    with pytest.raises(ValueError, match="missing \\['dreamsim'\\]"):
        ub.aggregate({"clip": [1], "siglip": [1], "dinov2": [1]}, "unigame")
    with pytest.raises(ValueError, match="different numbers of images"):
        ub.aggregate({"clip": [1], "siglip": [1], "dinov2": [1], "dreamsim": [1, 1]}, "unigame")
    with pytest.raises(ValueError, match="unknown backbone set"):
        ub.aggregate({}, "other")
    assert ub.BACKBONE_SETS == {"unigame": ("clip", "siglip", "dinov2", "dreamsim"),
                                "uae": ("clip", "longclip", "dinov2", "dinov3")}


def test_caption_prompt_is_exact():
    p = ub.CAPTION_PROMPT
    assert p.startswith("You are an expert vision-language model.  \nYour task is: Given an input image")
    assert p.count("  \n") == 2 and p.endswith("output the full description. ")
    assert 'transcribe it inside double quotes "".  \nNow, carefully analyze' in p
    assert "**textual description**" in p
