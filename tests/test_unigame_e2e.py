"""Train-then-evaluate in one command: checkpoints, results and one leaderboard row per method (CI-sized)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.models.checkpoints import TINY_DIR  # noqa: E402
from unigame.testing import tiny_clip, tiny_janus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EVAL = ["--eval", "vqav2_val,pope", "--eval-data", "shapes", "--eval-limit", "2", "--eval-batch-size", "4"]


def _unigame(*argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "unigame", "train", *map(str, argv)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=900)


def _board_rows(boards: Path) -> list[dict]:
    board = json.loads((boards / "post_training_world.json").read_text())
    return board["rows"]


def _train_methods(tmp_path, model_flags, methods):
    results, boards = tmp_path / "results", tmp_path / "boards"
    for name, flags in methods.items():
        proc = _unigame(*model_flags, "--data", "shapes", "--steps", "2", "--batch-size", "2", "--shapes-scenes", "6",
                        "--output", tmp_path / name, "--results", results, "--leaderboards", boards, *EVAL, *flags)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "leaderboards written" in proc.stdout
        (ckpt,) = (tmp_path / name / "checkpoints").glob("*-step000002")
        assert (ckpt / "COMPLETE").is_file() and (ckpt / "adapter_model.safetensors").is_file()
        assert {p.name for p in (tmp_path / name / "dynamics").glob("*.png")} == {
            "players.png", "dominance.png", "clean_vs_hard.png"}
    manifests = [json.loads(p.read_text()) for p in results.glob("*/*/manifest.json")]
    methods_seen = {m["tags"]["method"] for m in manifests}
    assert {"base"} | {m for m in methods_seen if m != "base"} == methods_seen and len(methods_seen) == 3
    for m in manifests:
        assert m["status"] == "complete" and {"method", "base_model", "step", "seed", "train_run"} <= set(m["tags"])
    rows = _board_rows(boards)
    assert sorted(r["key"]["method"] for r in rows) == sorted(methods_seen)


@pytest.mark.slow
def test_train_then_evaluate_on_a_random_janus(tmp_path):
    torch.set_num_threads(1)
    model = tiny_janus(tmp_path / "janus")
    clip = tiny_clip(tmp_path / "clip")
    _train_methods(tmp_path, ["--model", model, "--clip-weights", clip],
                   {"sft": ["--method", "sft"], "unigame": ["--method", "unigame", "--scene-check", "off",
                                                            "--clip-threshold", "0"]})


@pytest.mark.slow
@pytest.mark.skipif(not (TINY_DIR / "config.json").is_file(),
                    reason="harness/models/tiny_janus/ has no weights yet (python -m tinyfactory.pretrain)")
def test_train_then_evaluate_on_the_bundled_tiny_janus(tmp_path):
    clip = tiny_clip(tmp_path / "clip")
    # the bundled model is the default --model; --data shapes is its default data too
    _train_methods(tmp_path, ["--clip-weights", clip],
                   {"sft": ["--method", "sft"], "unigame": ["--method", "unigame"]})


@pytest.mark.slow
@pytest.mark.skipif(not (TINY_DIR / "config.json").is_file(),
                    reason="harness/models/tiny_janus/ has no weights yet (python -m tinyfactory.pretrain)")
def test_training_evaluation_shares_the_harness_results_store_and_says_where_everything_went(tmp_path):
    """`harness run` then `unigame train --eval` on the same tasks: the base model's answers come from the cache,
    the summary names the last checkpoint, and the command it prints evaluates that checkpoint from the cache."""
    tasks = ["--tasks", "vqav2_val,pope", "--data", "shapes", "--limit", "3"]
    run = subprocess.run([sys.executable, "-m", "harness", "run", *tasks, "--no-progress"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "unigame", "train", "--method", "sft", "--steps", "1",
                           "--batch-size", "2", "--shapes-scenes", "6", "--eval", "vqav2_val,pope", "--eval-data",
                           "shapes", "--eval-limit", "3"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("tiny-janus/*/manifest.json")
            if json.loads(p.read_text()).get("tags", {}).get("method") == "base"]
    assert len(base) == 1
    base_dir = Path(tmp_path / "results" / "tiny-janus" / base[0]["run_id"])
    for task in ("vqav2_val", "pope"):
        counts = json.loads((base_dir / task / "results.json").read_text())["counts"]
        assert counts["computed"] == 0 and counts["cached"] == counts["requests"] > 0
    ckpt = tmp_path / "runs" / "tiny-janus" / "sft-s0" / "checkpoints" / "sft-s0-step000001"
    assert (ckpt / "COMPLETE").is_file()
    assert f"last checkpoint {ckpt.relative_to(tmp_path)}" in proc.stdout
    assert "base model" in proc.stdout and "step 1" in proc.stdout
    assert (tmp_path / "results" / "leaderboards" / "index.html").is_file()
    assert "model.understand" in proc.stderr                         # progress bars during evaluation
    command = proc.stdout.split("evaluate it: ", 1)[1].splitlines()[0].split()
    assert command[:5] == ["python", "-m", "harness", "run", "--model"]
    again = subprocess.run([sys.executable, *command[1:], "--no-progress"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (evaluated,) = [p for p in (tmp_path / "results").glob("*/*/manifest.json")
                    if json.loads(p.read_text())["cli"][-1] == "--no-progress"
                    and "sft-s0-step000001" in json.loads(p.read_text())["model"]["spec"]]
    for task in ("vqav2_val", "pope"):
        assert json.loads((evaluated.parent / task / "results.json").read_text())["counts"]["computed"] == 0
    # where the checkpoint resolved: what keeps it apart on a board from another run's checkpoint of the same name
    assert json.loads(evaluated.read_text())["model"]["path"] == str(ckpt.resolve())
