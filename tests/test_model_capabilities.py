"""What a model can do decides what runs: a named task the model cannot serve stops the command before any work
(exit 2, one line), a suite runs what it can and says what it skipped (results table, manifest, `show`, the
leaderboards' "not applicable"), and a composite pair runs a round trip end to end. Through the real CLI, with tiny
random-config models built here (no download)."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from composite_builders import save_tiny_t2i, save_tiny_vlm  # noqa: E402
from conftest import run_cli  # noqa: E402
from harness.api import RunConfig, plan_tasks  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.runner import UnifiedModel  # noqa: E402

SKIP_WHY = "needs image generation, which the model lacks (it only does understanding)"


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-qwen2-vl", seed=2)


@pytest.fixture(scope="module")
def t2i(tmp_path_factory):
    return save_tiny_t2i(tmp_path_factory.mktemp("t2i") / "tiny-sd", seed=2)


class UnderstandingOnlyDouble(UnifiedModel):
    """A test double that answers questions and cannot draw (never asked anything here)."""

    name = spec = "understanding-only-double"
    kinds = ("understand",)


class GenerationOnlyDouble(UnifiedModel):
    """A test double that draws and cannot answer (never asked anything here)."""

    name = spec = "generation-only-double"
    kinds = ("generate",)


def test_every_task_declares_what_it_asks_of_the_model():
    tasks, skipped = plan_tasks(["all"], RunConfig(), UnderstandingOnlyDouble())
    assert [t.name for t in tasks] == ["vqav2_val", "mmmu_val", "mmbench_en_dev", "pope", "naturalbench",
                                       "advqa_val"]
    assert skipped == {t: SKIP_WHY for t in ("geneval", "wise", "unified_bench")}
    tasks, skipped = plan_tasks(["all"], RunConfig(), GenerationOnlyDouble())
    assert [t.name for t in tasks] == ["geneval", "wise"]
    assert set(skipped) == {"vqav2_val", "mmmu_val", "mmbench_en_dev", "pope", "unified_bench", "naturalbench",
                            "advqa_val"}
    with pytest.raises(HarnessError, match=r"^--tasks vqav2_val, mmmu_val, pope, mmbench_en_dev: need understanding "):
        plan_tasks(["understanding"], RunConfig(), GenerationOnlyDouble())     # a suite with nothing to run
    tasks, skipped = plan_tasks(["mmbench_en_test", "vqav2_testdev", "mmmu_dev", "unified_bench_uae"], RunConfig(),
                                UnifiedModel())
    assert len(tasks) == 4 and skipped == {}


def test_a_named_task_the_model_cannot_serve_stops_before_any_work(vlm, tmp_path):
    out = tmp_path / "o"
    proc = run_cli("run", "--model", vlm, "--tasks", "vqav2_val,geneval,wise", "--data", "shapes", "--limit", "2",
                   "--no-progress", "--output", out)
    assert proc.returncode == 2, proc.stderr[-2000:]
    hint = json.dumps({"understand": str(vlm), "generate": "stabilityai/stable-diffusion-3.5-large"})
    assert proc.stderr.strip().splitlines() == [
        f"error: --tasks geneval, wise: need image generation (generate requests), which --model {vlm} lacks (it "
        f"only does understanding); add the generate half: --model composite --model-args '{hint}' (or run a "
        "suite: it skips them)"]
    assert not list(out.glob("**/manifest.json"))          # no run folder, nothing computed


def test_a_suite_runs_what_the_model_can_and_lists_what_it_skipped(vlm, tmp_path):
    out = tmp_path / "o"
    proc = run_cli("run", "--model", vlm, "--tasks", "pope,generation", "--data", "shapes", "--limit", "2",
                   "--no-progress", "--output", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("pope ") for line in lines)
    for task in ("geneval", "wise"):
        assert any(line.split()[:3] == [task, "skipped", "n/a"] for line in lines), proc.stdout
        assert f"skipped {task}: {SKIP_WHY}" in lines
    manifest_path = next(out.glob("*/*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "complete" and manifest["tasks"] == ["pope"]
    assert manifest["skipped"] == {"geneval": SKIP_WHY, "wise": SKIP_WHY}
    shown = run_cli("show", manifest_path.parent)
    assert shown.returncode == 0 and f"skipped geneval: {SKIP_WHY}" in shown.stdout
    assert "not finished" not in shown.stdout
    board = run_cli("leaderboard", "generation_world", "--results", out)
    assert board.returncode == 0, board.stderr
    row = next(line for line in (out / "leaderboards" / "generation_world.md").read_text().splitlines()
               if line.startswith("| tiny-qwen2-vl"))
    assert row.count("not applicable") == 2


def test_a_composite_pair_runs_a_round_trip_end_to_end(vlm, t2i, tmp_path):
    out = tmp_path / "o"
    args = ("run", "--model", f"{vlm}+{t2i}", "--tasks", "unified_bench", "--data", "shapes", "--limit", "2",
            "--model-args", '{"num_inference_steps": 2}', "--no-progress", "--output", out)
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next(out.glob("tiny-qwen2-vl__tiny-sd/*/"))
    result = json.loads((run_dir / "unified_bench" / "results.json").read_text())
    assert result["counts"]["failed"] == 0 and result["dataset"]["n_evaluated"] == 2
    samples = [json.loads(line) for line in (run_dir / "unified_bench" / "samples.jsonl").read_text().splitlines()]
    caption = samples[0]["requests"]["caption"][0]["response"]["text"]
    regen = samples[0]["requests"]["regenerate"][0]
    assert caption and regen["text"] == caption and regen["response"]["images"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["capabilities"] == ["understand", "generate"] and "skipped" not in manifest
    again = run_cli(*args)                                  # a rerun answers every request from the cache
    assert again.returncode == 0, again.stderr[-2000:]
    redo = json.loads((run_dir / "unified_bench" / "results.json").read_text())
    assert redo["counts"]["cached"] == redo["counts"]["requests"] and redo["metrics"] == result["metrics"]
