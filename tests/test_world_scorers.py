"""The world's rule scorers as registered Scorers: same request kinds and response structure as the real ones."""
import numpy as np
import pytest
from PIL import Image as PILImage

from harness.registry import SCORERS
from harness.scorers import make_scorer
from harness.masks import rle_decode
from harness.task import score
from harness.world import WORLD_VERSION, parse, render
from harness.world.judge import judge_text, wise_judge
from harness.world.scene import BACKGROUND, Obj, Scene
from tasks.wise.parsing import parse_legacy

SCENE = Scene((Obj("circle", "red", "large", 0.3, 0.3), Obj("square", "blue", "small", 0.75, 0.7)))
EXPLANATION = "Red things. So the image should show one red circle. Expected: one red circle."


@pytest.fixture(scope="module")
def image():
    return render(SCENE, 64)


def _blank():
    return PILImage.new("RGB", (64, 64), BACKGROUND)


def test_registered_lazily_with_world_fingerprints():
    for name in ("world_detector", "world_judge", "world_scene"):
        assert name in SCORERS
        scorer = make_scorer(name)
        assert scorer.fingerprint() == f"{name}/v1/world-{WORLD_VERSION}"
        assert scorer.describe()["world_version"] == WORLD_VERSION


def test_detector_matches_the_real_detectors_structure_plus_colour(image):
    [resp] = make_scorer("world_detector").run("detect", [score("world_detector", "detect", images=[image])])
    dets = resp.values["detections"]
    assert sorted(dets) == ["circle", "square"] and resp.values["unrecognised"] == 0
    expected = parse(image).detections
    for cls, found in dets.items():
        assert [d["color"] for d in found] == [d["color"] for d in expected[cls]]
        for got, want in zip(found, expected[cls]):
            assert got["box"] == pytest.approx(want["box"]) and got["score"] == pytest.approx(want["score"])
            assert got["mask"]["size"] == [64, 64]
            assert np.array_equal(rle_decode(got["mask"]), want["mask"])   # COCO RLE, as the real detector's
    assert dets["circle"][0]["color"] == "red" and dets["square"][0]["color"] == "blue"
    [none] = make_scorer("world_detector").run("detect", [score("world_detector", "detect", images=[image],
                                                                min_score=1.01)])
    assert none.values["detections"] == {}


def test_judge_answers_in_the_legacy_format(image):
    judge = make_scorer("world_judge")
    req = score("world_judge", "judge", text="PROMPT", images=[image], Prompt="p", Explanation=EXPLANATION)
    [resp] = judge.run("judge", [req])
    assert resp.values["text"] == judge_text(wise_judge(image, EXPLANATION)) == resp.text
    assert parse_legacy(resp.values["text"]).scores == {"consistency": 1, "realism": 2, "aesthetic_quality": 2}
    alone = render(Scene((Obj("circle", "red", "large", 0.5, 0.5),)), 64)
    [perfect] = judge.run("judge", [score("world_judge", "judge", images=[alone], Explanation=EXPLANATION)])
    assert parse_legacy(perfect.text).scores == {"consistency": 2, "realism": 2, "aesthetic_quality": 2}
    [bad] = judge.run("judge", [score("world_judge", "judge", images=[image])])
    assert not bad.ok and "Explanation" in bad.error


def test_scene_similarity_and_image_count_checks(image):
    scorer = make_scorer("world_scene")
    same, blank, one = scorer.run("compare", [score("world_scene", "compare", images=[image, image]),
                                              score("world_scene", "compare", images=[image, _blank()]),
                                              score("world_scene", "compare", images=[image])])
    assert same.values == {"similarity": 1.0} and blank.values == {"similarity": 0.0}
    assert not one.ok and "2 image" in one.error
    again = scorer.run("compare", [score("world_scene", "compare", images=[image, image])])[0]
    assert again.values == same.values
