"""UnifiedBench end to end (test-double backbones with known vectors -> the spec's 67.5 example; failed round
trips; the world backbone and its mismatched control), the suites, and the derived cross-task metrics."""
import math

import pytest
from PIL import Image as PILImage

from generation_doubles import (ScriptedDistance, ScriptedEmbedder, SolidDouble, WorldRenderDouble, run_engine,
                                run_task)
from harness import aggregates
from harness.errors import DataError
from harness.registry import AGGREGATES, SUITES
from harness.results import TaskResult
from tasks.unified_bench import scoring
from tasks.unified_bench.task import UnifiedBench, UnifiedBenchUAE
from understanding_doubles import shapes, values, world_cache  # noqa: F401


def _unit(c: float) -> list[float]:
    """A vector whose cosine with [1, 0] is c."""
    return [c, math.sqrt(1 - c * c)]


# the spec's worked example (§7.3): CLIP [0.8, 0.6], SigLIP [0.9, 0.7], DINOv2 [0.5, 0.7], DreamSim d [0.3, 0.5]
SIMS = {"clip": (0.8, 0.6), "siglip": (0.9, 0.7), "dinov2": (0.5, 0.7)}


def _backbones(images=("0", "1")):
    scorers = {}
    for name, sims in SIMS.items():
        answers = {}
        for doc, c in zip(images, sims):
            answers[f"{doc}/{name}/reference"] = [1.0, 0.0]
            answers[f"{doc}/{name}/reconstruction"] = _unit(c)
        scorers[name] = ScriptedEmbedder(name, answers)
    scorers["dreamsim"] = ScriptedDistance({f"{d}/dreamsim/pair": v for d, v in zip(images, (0.3, 0.5))})
    return scorers


@pytest.fixture
def refs(tmp_path):
    folder = tmp_path / "Image"
    folder.mkdir()
    for i, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)][:3]):
        PILImage.new("RGB", (16, 16), colour).save(folder / f"{i}.jpg")
    return folder


def test_spec_example_through_the_task(refs, tmp_path):
    (refs / "2.jpg").unlink()
    model = SolidDouble()
    scorers = _backbones()
    records, metrics = run_task(UnifiedBench(data=str(refs)), model, scorers)
    v = values(metrics)
    assert v["overall"] == pytest.approx(67.5)
    assert (v["clip"], v["siglip"], v["dinov2"], v["dreamsim"]) == pytest.approx((70, 80, 60, 60))
    assert records[0]["caption"] == "caption 0" and metrics["details"]["backbone_set"] == "unigame"
    req = scorers["dreamsim"].requests[0]
    assert len(req.images) == 2 and req.images[1].path == refs / "0.jpg"        # (reconstruction, reference)


def test_caption_request_and_failed_round_trips(refs):
    model, scorers = SolidDouble(fail={"2"}), _backbones()
    task = UnifiedBench(data=str(refs))
    records, metrics = run_task(task, model, scorers)
    assert values(metrics)["overall"] == pytest.approx(67.5 * 2 / 3)           # the failure counts as 0
    assert metrics["details"]["failures"] == {"caption": 1, "regenerate": 0, "score": 0}
    assert records[2]["failed"] == "caption" and records[2]["similarities"]["clip"] is None
    _, excluded = run_task(UnifiedBench(data=str(refs), profile="exclude_failures"), SolidDouble(fail={"2"}),
                           _backbones())
    assert values(excluded)["overall"] == pytest.approx(67.5) and excluded["details"]["failure_mode"] == "exclude"
    s = task.settings()
    assert s["caption_prompt"] == scoring.CAPTION_PROMPT and s["backbone_set"] == "unigame"
    assert s["caption_decoding"] == {"max_new_tokens": 512, "do_sample": True, "temperature": 0.7}


def test_a_failed_backbone_scores_zero_for_that_backbone_only(refs):
    (refs / "2.jpg").unlink()
    scorers = _backbones()
    del scorers["siglip"].answers["1/siglip/reconstruction"]
    records, metrics = run_task(UnifiedBench(data=str(refs)), SolidDouble(), scorers)
    v = values(metrics)
    assert v["siglip"] == pytest.approx(45.0) and v["clip"] == pytest.approx(70)
    assert records[1]["failed"] == "score" and "siglip" in records[1]["error"]


@pytest.mark.parametrize("profile", ["official", "exclude_failures"])
def test_an_all_zero_embedding_is_similarity_0_not_a_failure(refs, profile):
    """UAE's F.normalize turns a zero vector into zeros: cosine 0, counted in every mode (never dropped)."""
    (refs / "2.jpg").unlink()
    scorers = _backbones()
    scorers["clip"].answers["1/clip/reconstruction"] = {"embedding": [0.0, 0.0]}
    scorers["dinov2"].answers["0/dinov2/reference"] = {"embedding": [0.0, 0.0]}
    records, metrics = run_task(UnifiedBench(data=str(refs), profile=profile), SolidDouble(), scorers)
    v = values(metrics)
    assert v["clip"] == pytest.approx(40.0) and v["dinov2"] == pytest.approx(35.0) and v["siglip"] == pytest.approx(80)
    assert records[1]["similarities"]["clip"] == 0.0 and records[0]["similarities"]["dinov2"] == 0.0
    assert metrics["details"]["n_failed"] == 0 and metrics["details"]["per_backbone"]["clip"]["n_used"] == 2


def test_reference_embeddings_are_cached_across_runs(refs, tmp_path):
    (refs / "2.jpg").unlink()
    scorers = _backbones()
    run_engine(tmp_path, UnifiedBench(data=str(refs)), SolidDouble(), scorers, seed=1)
    before = len(scorers["clip"].requests)
    res = run_engine(tmp_path, UnifiedBench(data=str(refs)), SolidDouble(), scorers, seed=2)
    assert before == 4 and len(scorers["clip"].requests) == before        # embeddings come from the cache
    assert res.results["unified_bench"].to_dict()["metrics"]["overall"]["value"] == pytest.approx(67.5)


def test_uae_backbone_set():
    task = UnifiedBenchUAE(data="unused-folder")
    assert task.backbones == ("clip", "longclip", "dinov2", "dinov3") and task.settings()["backbone_set"] == "uae"
    assert task.display_scale == 1.0 and task.headline == "overall"


def test_world_round_trip_and_mismatched_control(shapes, tmp_path):
    res = run_engine(tmp_path, UnifiedBench(data=shapes, world_n=12), WorldRenderDouble())
    r = res.results["unified_bench"].to_dict()
    assert r["metrics"]["overall"]["value"] == 100.0 and r["settings"]["backbone_set"] == "world"
    assert r["metrics"]["overall"]["value"] >= 2 * r["metrics"]["mismatched_overall"]["value"]
    _, blank = run_task(UnifiedBench(data=shapes, world_n=12), WorldRenderDouble("blank"))
    assert values(blank)["overall"] == 0.0


def test_default_source_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        UnifiedBench().docs()
    assert "\n" not in str(e.value) and "Image.zip" in str(e.value) and "--data DIR" in str(e.value)


def test_default_source_is_fetched_and_extracted_once(tmp_path, monkeypatch, refs):
    import zipfile

    import tasks.unified_bench.task as mod

    archive = tmp_path / "Image.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(refs.iterdir()):
            zf.write(p, f"Image/{p.name}")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.setattr(mod, "UAE_URL", archive.as_uri())                  # no network in tests
    task = UnifiedBench()
    assert [d["doc_id"] for d in task.docs()] == ["0", "1", "2"]
    assert task.dataset_info.source == "hub" and task.dataset_info.revision == "v1.0"
    archive.unlink()
    assert len(UnifiedBench().docs()) == 3                                # from the extracted cache


def test_suites():
    nine = ("vqav2_val", "mmmu_val", "mmbench_en_dev", "pope", "geneval", "wise", "unified_bench", "naturalbench",
            "advqa_val")
    assert SUITES.load("unigame_paper") == nine and SUITES.load("all") == nine
    assert SUITES.load("generation") == ("geneval", "wise")
    assert SUITES.load("consistency") == ("unified_bench", "wise")


def _result(value, source="hub", scale=100.0, profile=None):
    """A stored result as tasks write it: the value in storage units and the task's display scale."""
    return TaskResult.from_dict({"task": "t", "metrics": {"overall": {"value": value}, "accuracy": {"value": value},
                                                          "circular_accuracy": {"value": value},
                                                          "f1": {"value": value}},
                                 "dataset": {"source": source, "name": "d"}, "display_scale": scale,
                                 "profile": profile})


def test_derived_metrics_on_unigame_table_1():
    assert {"consistency_score", "understanding_overall"} <= set(AGGREGATES.names())
    out = aggregates.compute_run({"unified_bench": _result(82.77, scale=1.0), "wise": _result(0.35)})
    assert round(out["consistency_score"]["value"], 2) == 63.66 and "consistency_score_uae" not in out
    und = {"vqav2_val": _result(0.782), "mmmu_val": _result(0.410), "mmbench_en_dev": _result(0.792),
           "pope": _result(0.874)}
    assert aggregates.compute_run(und)["understanding_overall"]["value"] == pytest.approx(71.45)
    mixed = aggregates.compute_run({"unified_bench": _result(82.77, "shapes", 1.0), "wise": _result(0.35)})
    assert mixed["consistency_score"]["value"] is None


def test_the_consistency_score_takes_the_wiscore_not_wise_verifieds_binary_rate():
    ub = _result(82.77, scale=1.0)
    for profile in ("legacy", "lmms"):
        out = aggregates.compute_run({"unified_bench": ub, "wise": _result(0.35, profile=profile)})
        assert round(out["consistency_score"]["value"], 2) == 63.66
    out = aggregates.compute_run({"unified_bench": ub, "wise": _result(0.5, profile="verified")})
    assert out["consistency_score"]["value"] is None
    assert "wise.overall of profile verified is not what the formula takes (profile legacy or lmms)" in \
        out["consistency_score"]["note"]


def test_consistency_suite_on_shapes_writes_the_consistency_score(shapes, tmp_path):
    from tasks.world import build
    from tasks.wise.task import WISE

    model = WorldRenderDouble(wise=build("wise", n=12))
    res = run_engine(tmp_path, [UnifiedBench(data=shapes, world_n=6), WISE(data=shapes, world_n=12)], model)
    assert res.derived["consistency_score"]["value"] == pytest.approx(100.0)
