"""GenEval end to end: the world (perfect / blank / failing test doubles), a real-schema metadata fixture scored
with test-double detector and colour classifier, the real metadata file's loader, and the offline error."""
import json
from pathlib import Path

import pytest
from PIL import Image as PILImage

from generation_doubles import (ScriptedClassifier, ScriptedDetector, SolidDouble, WorldRenderDouble, run_engine,
                                run_task)
from harness.errors import DataError
from harness.masks import rle_encode
from harness.types import Response
from tasks.world import build
from tasks.geneval import scoring
from tasks.geneval.task import METADATA_SHA256, GenEval
from understanding_doubles import shapes, values, world_cache  # noqa: F401

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference-data" / "geneval"
N = 12   # world prompts: every tag present (two each)


def test_perfect_double_scores_one_on_shapes_through_the_engine(shapes, tmp_path):
    task = GenEval(data=shapes, world_n=N)
    model = WorldRenderDouble(geneval=build("geneval", n=N))
    res = run_engine(tmp_path, task, model).results["geneval"].to_dict()
    m = {k: v["value"] for k, v in res["metrics"].items()}
    assert m["overall"] == 1.0 and all(m[t] == 1.0 for t in scoring.TAGS) and m["correct_prompts"] == 1.0
    assert res["details"]["n_images"] == 4 * N and res["details"]["n_failed"] == 0
    assert res["headline"] == "overall" and res["display_scale"] == 100.0
    assert res["settings"]["detector"] == "world_detector" and "scene parser" in res["settings"]["deviation"]
    assert res["settings"]["n_images"] == 4 and res["dataset"]["source"] == "shapes"
    gens = [r for r in model.requests if r.kind == "generate"]
    first = [r for r in gens if r.doc_id == "00000"]
    assert [r.sample for r in first] == [0, 1, 2, 3] and len({r.seed for r in first}) == 4
    assert first[0].text == build("geneval", n=N)[0]["prompt"] and first[0].params == {}


def test_blank_and_failed_images_are_incorrect_and_counted(shapes):
    task = GenEval(data=shapes, world_n=N, n_images=2, size=64)
    records, metrics = run_task(task, WorldRenderDouble("blank", fail={"00000/0", "00003/1"}))
    v = values(metrics)
    assert v["overall"] == 0.0 and v["correct_images"] == 0.0
    assert metrics["details"]["failures"] == {"generate": 2} and metrics["details"]["n_images"] == 2 * N
    assert records[0]["images"][0]["failed"] == "generate" and not records[0]["images"][0]["correct"]
    assert records[0]["images"][1]["reason"] == "expected square>=1, found 0"


# --- real schema: hand-made detections from a test-double detector, colours from a test-double classifier --------
METADATA = [
    {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}],
     "prompt": "a photo of two clocks"},
    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"},
    {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"},
    {"tag": "color_attr", "include": [{"class": "wine glass", "count": 1, "color": "purple"},
                                      {"class": "apple", "count": 1, "color": "black"}],
     "prompt": "a photo of a purple wine glass and a black apple"},
    {"tag": "two_object", "include": [{"class": "bench", "count": 1}, {"class": "sports ball", "count": 1}],
     "prompt": "a photo of a bench and a sports ball"},
    {"tag": "single_object", "include": [{"class": "computer mouse", "count": 1}],
     "prompt": "a photo of a computer mouse"},
]


def _det(box, s=0.95, mask=False):
    d = {"box": box, "score": s}
    if mask:
        import numpy as np

        m = np.zeros((32, 32), bool)
        m[box[1]:box[3], box[0]:box[2]] = True
        d["mask"] = rle_encode(m)
    return d


DETECTIONS = {
    "00000/0": {"clock": [_det([0, 0, 5, 5]), _det([10, 0, 15, 5], 0.92)]},           # two above 0.9: correct
    "00000/1": {"clock": [_det([0, 0, 5, 5]), _det([10, 0, 15, 5], 0.5)]},            # one above 0.9: wrong
    "00001/0": {"teddy bear": [_det([0, 0, 10, 10])], "dog": [_det([20, 0, 30, 10])]},
    "00001/1": {"teddy bear": [_det([0, 0, 10, 10])], "dog": [_det([1, 0, 11, 10])]},  # overlapping: no relation
    "00002/0": {"car": [_det([2, 2, 20, 12], mask=True)]},
    "00002/1": {"car": [_det([2, 2, 20, 12], mask=True), _det([0, 0, 4, 4], 0.2)]},
    "00003/0": {"wine glass": [_det([0, 0, 8, 8])], "apple": [_det([10, 10, 20, 20], mask=True)]},
    "00003/1": {"wine glass": [_det([0, 0, 8, 8])], "apple": [_det([10, 10, 20, 20])]},
    "00004/0": {"bench": [_det([0, 0, 8, 8])], "sports ball": [_det([9, 9, 12, 12])], "dog": [_det([1, 1, 3, 3])]},
    # 00004/1: the detector fails on it (no scripted answer)
    "00005/0": {"mouse": [_det([4, 4, 9, 9])]},             # the checkpoint's COCO name for GenEval's class
}
COLOURS = {"00002/0/car/0": "red", "00002/1/car/0": "blue", "00003/0/wine glass/0": "purple",
           "00003/0/apple/0": "black", "00003/1/wine glass/0": "purple"}   # 00003/1 apple: classifier fails


def test_real_schema_with_test_double_detector_and_classifier(tmp_path):
    data = tmp_path / "evaluation_metadata.jsonl"
    data.write_text("".join(json.dumps(m) + "\n" for m in METADATA))
    detector, classifier = ScriptedDetector(DETECTIONS), ScriptedClassifier(COLOURS)
    task = GenEval(data=str(tmp_path), n_images=2)
    records, metrics = run_task(task, SolidDouble(fail={"00005/1"}),
                                {"detector": detector, "clip_openclip": classifier})
    v = values(metrics)
    assert {t: v[t] for t in scoring.TAGS} == {t: 0.5 for t in scoring.TAGS} and v["overall"] == 0.5
    assert metrics["details"]["failures"] == {"detect": 1, "colour": 1, "generate": 1}
    verdicts = {(r["index"], im["sample"]): im for r in records for im in r["images"]}
    assert verdicts[(0, 1)]["reason"] == "expected clock>=2, found 1"
    assert verdicts[(1, 1)]["reason"].startswith("expected dog right of target")
    assert verdicts[(2, 1)]["reason"].startswith("expected red car>=1, found 0 red")
    assert verdicts[(3, 1)]["failed"] == "colour" and verdicts[(4, 1)]["failed"] == "detect"
    assert verdicts[(5, 0)]["correct"] and verdicts[(5, 1)]["failed"] == "generate"
    # one classify request per object a colour clause looks at, with GenEval's ten colours and three templates
    refs = sorted(r.ref for r in classifier.requests)
    assert refs == sorted(["00002/0/car/0", "00002/1/car/0", "00003/0/wine glass/0", "00003/0/apple/0",
                           "00003/1/wine glass/0", "00003/1/apple/0"])
    req = next(r for r in classifier.requests if r.ref == "00002/0/car/0")
    assert req.params == {"classnames": list(scoring.COLORS), "prompts": scoring.colour_prompts("car")}
    assert req.images[0].pil().size == (18, 10)          # cut to the box, over #999 outside the mask
    assert req.images[0].pil().getpixel((0, 0)) != (153, 153, 153)
    assert len(detector.requests) == 11 and task.dataset_info.source == "path"
    assert detector.requests[0].params == {"min_score": 0.3}
    assert task.settings()["colour_classifier"] == "clip_openclip" and "Mask2Former" in task.settings()["deviation"]


@pytest.mark.parametrize("threshold, correct", [(None, False), (0.1, False), (0.0, True), (0.12, False), ("0", True)])
def test_position_threshold_option(tmp_path, threshold, correct):
    """GenEval's --options position_threshold: dog [25,0,125,100] against bear [0,0,100,100] is offset 25 with a
    margin of 0.1 x 200 = 20, so dx = 5/25 = 0.2 and no relation by default (the spec's worked example); with no
    margin dx = 1, "right of"."""
    data = tmp_path / "evaluation_metadata.jsonl"
    data.write_text(json.dumps(METADATA[1]) + "\n")
    detector = ScriptedDetector({"00000/0": {"teddy bear": [_det([0, 0, 100, 100])], "dog": [_det([25, 0, 125, 100])]}})
    options = {} if threshold is None else {"position_threshold": threshold}
    task = GenEval(data=str(data), n_images=1, classifier=None, **options)
    records, metrics = run_task(task, SolidDouble(), {"detector": detector})
    assert records[0]["images"][0]["correct"] is correct and values(metrics)["position"] == float(correct)
    assert task.settings()["thresholds"]["position_threshold"] == float(0.1 if threshold is None else threshold)
    assert "stable" in task.settings()["ties"]


@pytest.mark.parametrize("bad", [-0.1, "x", float("nan"), True, None])
def test_position_threshold_must_be_a_non_negative_number(bad):
    with pytest.raises(DataError, match="position_threshold must be a number >= 0"):
        GenEval(data="unused.jsonl", position_threshold=bad)


@pytest.mark.skipif(not REF.exists(), reason="needs ../shared/reference-data/geneval (the real metadata file)")
def test_real_metadata_file_loads_and_matches_the_pin(tmp_path, monkeypatch):
    task = GenEval(data=str(REF / "evaluation_metadata.jsonl"))
    docs = task.docs()
    assert len(docs) == 553 and docs[0]["doc_id"] == "00000" and docs[552]["index"] == 552
    counts = {t: sum(d["tag"] == t for d in docs) for t in scoring.TAGS}
    assert counts == {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                      "color_attr": 100}
    assert task.dataset_info.sha256 == METADATA_SHA256 and task.dataset_info.extra == {"official_file": True}
    # the default source reads the cached official file without the network
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = tmp_path / "geneval" / "af4902f" / "evaluation_metadata.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((REF / "evaluation_metadata.jsonl").read_bytes())
    default = GenEval()
    assert len(default.docs()) == 553 and default.dataset_info.revision == "af4902f"
    assert default.dataset_info.source == "hub" and default.settings()["detector"] == "detector"
    named = GenEval(object_names=str(REF / "object_names.txt"))
    out = {"generate": [Response(images=(PILImage.new("RGB", (4, 4)),))]}
    [req] = named._build_detect(named.docs()[0], out)
    assert req.params["class_names"][64] == "computer mouse" and req.params["min_score"] == 0.3


def test_default_source_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        GenEval().docs()
    msg = str(e.value)
    assert "\n" not in msg and "evaluation_metadata.jsonl" in msg and "--data PATH" in msg
    assert "raw.githubusercontent.com/djghosh13/geneval/af4902f" in msg
    # a cached file that is not the pinned one is refused, not silently used
    bad = tmp_path / "geneval" / "af4902f" / "evaluation_metadata.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps(METADATA[0]) + "\n")
    with pytest.raises(DataError, match="differs from the pinned"):
        GenEval().docs()


@pytest.mark.skipif(not REF.exists(), reason="needs ../shared/reference-data/geneval (the real metadata file)")
def test_default_source_is_fetched_once_and_checked_against_the_pin(tmp_path, monkeypatch):
    import tasks.geneval.task as mod

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.setattr(mod, "METADATA_URL", (REF / "evaluation_metadata.jsonl").as_uri())   # no network in tests
    assert len(GenEval().docs()) == 553
    assert (tmp_path / "cache" / "geneval" / "af4902f" / "evaluation_metadata.jsonl").is_file()
    monkeypatch.setattr(mod, "METADATA_URL", (tmp_path / "nowhere.jsonl").as_uri())
    assert len(GenEval().docs()) == 553                                  # from the cache, not fetched again


def test_bad_metadata_names_the_line(tmp_path):
    data = tmp_path / "m.jsonl"
    data.write_text(json.dumps(METADATA[0]) + "\n" + json.dumps({"tag": "colors", "prompt": "x"}) + "\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: field 'include'"):
        GenEval(data=str(data)).docs()
