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
                    reason="harness/models/tiny_janus/ has no weights yet (python -m harness.models.pretrain_tiny)")
def test_train_then_evaluate_on_the_bundled_tiny_janus(tmp_path):
    clip = tiny_clip(tmp_path / "clip")
    # the bundled model is the default --model; --data shapes is its default data too
    _train_methods(tmp_path, ["--clip-weights", clip],
                   {"sft": ["--method", "sft"], "unigame": ["--method", "unigame"]})
