"""Rule scorers of the world: WISE rule judge, scene similarity, scene matching."""
import re
from dataclasses import replace

import pytest
from PIL import Image, ImageDraw

from harness.world import Obj, Scene, render, rng_for, sample_scene
from harness.world.grammar import Requirement, parse_requirement
from harness.world.judge import judge_text, matches_scene, scene_diff, scene_similarity, wise_judge
from harness.world.render import Shift
from harness.world.scene import BACKGROUND, COLORS
from tasks.wise.world import reference_scene
from tasks.world import build

WISE_RX = re.compile(r"\*{0,2}(Consistency|Realism|Aesthetic Quality)\*{0,2}\s*[:：]?\s*(\d)", re.IGNORECASE)
KEYS = {"consistency", "realism", "aesthetic_quality"}


@pytest.fixture(scope="module")
def wise_rows():
    return build("wise")


def test_judge_gives_full_marks_on_clean_expected_scene(wise_rows):
    for r in wise_rows:
        image = render(reference_scene(r, rng_for("eval", "test-judge", r["prompt_id"])))
        scores = wise_judge(image, r)
        assert set(scores) == KEYS and all(isinstance(v, int) for v in scores.values())
        assert scores == {"consistency": 2, "realism": 2, "aesthetic_quality": 2}, (r["Prompt"], scores)


def test_judge_penalises_wrong_scenes():
    explanation = "A ripe banana is yellow. So the image should show one yellow circle. Expected: one yellow circle."
    good = Scene((Obj("circle", "yellow", "large", 0.5, 0.5),))
    assert wise_judge(render(good), explanation)["consistency"] == 2
    wrong_color = Scene((Obj("circle", "blue", "large", 0.5, 0.5),))
    assert wise_judge(render(wrong_color), explanation)["consistency"] == 1  # right shape only
    wrong = Scene((Obj("square", "red", "large", 0.5, 0.5),))
    assert wise_judge(render(wrong), explanation)["consistency"] == 0
    extra = Scene((Obj("circle", "yellow", "small", 0.3, 0.3), Obj("square", "red", "small", 0.7, 0.7)))
    assert wise_judge(render(extra), explanation)["consistency"] == 1
    empty = wise_judge(Image.new("RGB", (64, 64), BACKGROUND), explanation)
    assert empty == {"consistency": 0, "realism": 0, "aesthetic_quality": 0}


def test_judge_relation_and_counts():
    rel = "On a map north is up. So the image should show x. Expected: one red circle above one blue square."
    above = Scene((Obj("circle", "red", "small", 0.5, 0.2), Obj("square", "blue", "small", 0.5, 0.75)))
    below = Scene((Obj("circle", "red", "small", 0.5, 0.75), Obj("square", "blue", "small", 0.5, 0.2)))
    assert wise_judge(render(above), rel)["consistency"] == 2
    assert wise_judge(render(below), rel)["consistency"] == 1
    count = "Expected: three green triangles."
    two = Scene((Obj("triangle", "green", "small", 0.25, 0.25), Obj("triangle", "green", "small", 0.75, 0.75)))
    three = Scene(two.objects + (Obj("triangle", "green", "small", 0.25, 0.75),))
    assert wise_judge(render(three), count)["consistency"] == 2
    assert wise_judge(render(two), count)["consistency"] == 1


def test_judge_realism_and_aesthetics_react_to_flaws():
    explanation = "Expected: one red square."
    img = Image.new("RGB", (64, 64), BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.rectangle([20, 20, 39, 39], fill=COLORS["red"])
    draw.rectangle([0, 50, 60, 54], fill=COLORS["blue"])  # a smear the parser cannot name, touching the frame
    scores = wise_judge(img, explanation)
    assert scores["consistency"] == 2 and scores["realism"] == 1 and scores["aesthetic_quality"] < 2
    cut = Image.new("RGB", (64, 64), BACKGROUND)
    ImageDraw.Draw(cut).rectangle([0, 10, 20, 30], fill=COLORS["red"])  # touches the frame
    assert wise_judge(cut, explanation)["aesthetic_quality"] == 1
    blurred = render(Scene((Obj("square", "red", "large", 0.5, 0.5),)), 64, Shift(blur=2.5, noise=25), seed=1)
    assert wise_judge(blurred, explanation)["realism"] <= 1


def test_judge_text_parses_with_wise_regex():
    text = judge_text({"consistency": 2, "realism": 1, "aesthetic_quality": 0})
    assert [(m[0].lower(), int(m[1])) for m in WISE_RX.findall(text)] == [
        ("consistency", 2), ("realism", 1), ("aesthetic quality", 0)]


def test_requirement_roundtrip():
    red_circle = {"count": 1, "color": "red", "shape": "circle"}
    blue_square = {"count": 1, "color": "blue", "shape": "square"}
    reqs = [Requirement(({"count": 1, "color": "yellow", "shape": "circle"},)),
            Requirement(({"count": 2, "color": "red", "shape": "square"}, blue_square)),
            Requirement((red_circle, blue_square), "left of"),
            Requirement((dict(red_circle, size="large"),
                         {"count": 1, "size": "small", "color": "green", "shape": "triangle"}))]
    for req in reqs:
        assert parse_requirement("Some reasoning. " + req.sentence()) == req
    assert parse_requirement("no requirement here") is None


def test_scene_similarity():
    a = sample_scene(rng_for("eval", "test-sim", 0), 3)
    assert scene_similarity(render(a), render(a)) == 1.0
    assert scene_similarity(render(a), render(a, 128)) == 1.0  # resolution does not matter
    recolored = Scene(tuple(replace(o, color="black" if o.color != "black" else "red") for o in a.objects))
    assert scene_similarity(render(a), render(recolored)) == 0.0
    last = a.objects[2]
    partial = Scene(a.objects[:2] + (replace(last, shape="circle" if last.shape != "circle" else "square"),))
    assert scene_similarity(render(a), render(partial)) == pytest.approx(2 * 2 / 6)
    empty = Image.new("RGB", (64, 64), BACKGROUND)
    assert scene_similarity(empty, empty) == 1.0 and scene_similarity(render(a), empty) == 0.0
    b = sample_scene(rng_for("eval", "test-sim", 1), 3)
    assert scene_similarity(render(a), render(b)) == scene_similarity(render(b), render(a))
    sims = [scene_similarity(render(sample_scene(rng_for("eval", "sim", i))),
                             render(sample_scene(rng_for("eval", "sim", i + 100)))) for i in range(30)]
    assert sum(sims) / len(sims) < 0.2


def test_matches_scene_and_diff():
    scene = sample_scene(rng_for("eval", "test-match", 0), 3)
    assert matches_scene(render(scene), scene)
    assert matches_scene(render(scene, 256), scene)
    other = Scene(scene.objects[:2])
    assert not matches_scene(render(other), scene)
    assert scene_diff(render(other), scene) == {"matched": 2, "missing": 1, "extra": 0, "unrecognised": 0}
    recolored = Scene((replace(scene.objects[0], color="black" if scene.objects[0].color != "black" else "red"),)
                      + scene.objects[1:])
    assert scene_diff(render(recolored), scene)["missing"] == 1
