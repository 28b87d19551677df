"""Two-process training (gloo, CPU) matches one process with the same global batch, to floating-point tolerance:
under torchrun, accelerate launch, and with the LM sharded (--fsdp) through a stop-and-resume.

`--no-buffer --filter none --lora-dropout 0` keeps every draw a function of the global batch position (the buffer
and dropout are per rank by design), so the two runs must agree parameter for parameter.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from unigame.testing import tiny_janus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _launch(prefix: list[str], out: Path, model: Path, method: list[str], extra: tuple = ()) -> str:
    argv = ["train", "--model", str(model), "--data", "shapes", "--shapes-scenes", "6", "--batch-size", "4",
            "--steps", "3", "--warmup", "1", "--lora-dropout", "0", "--scene-check", "off", "--no-plots",
            "--output", str(out), *method, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([*prefix, "-m", "unigame", *argv], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _tensors(out: Path, name: str) -> dict:
    from safetensors.torch import load_file

    (ckpt,) = (out / "checkpoints").glob("*-step000003")
    return load_file(str(ckpt / "training" / f"{name}.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate", "fsdp"])
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, launcher):
    torch.set_num_threads(1)
    model = tiny_janus(tmp_path / "janus")
    method = ["--method", "unigame", "--no-buffer", "--filter", "none"]
    _launch([sys.executable], tmp_path / "one", model, method)
    if launcher in ("torchrun", "fsdp"):
        prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    else:
        # --multi_gpu starts two processes (accelerate's --cpu would start one); without GPUs they use gloo
        prefix = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", "29517"]
    # the two-process run also evaluates its final checkpoint, sharded over both processes
    evaluate = ("--eval", "vqav2_val", "--eval-data", "shapes", "--eval-limit", "3", "--no-eval-base",
                "--results", str(tmp_path / "results")) if launcher == "torchrun" else ()
    if launcher == "fsdp":       # sharded LoRA and optimiser state through a stop and a resume
        _launch(prefix, tmp_path / "two", model, method, ("--fsdp", "--stop-at", "2"))
        said = _launch(prefix, tmp_path / "two", model, method, ("--fsdp", "--resume"))
    else:
        said = _launch(prefix, tmp_path / "two", model, method, evaluate)
    assert "2 process(es)" in said          # really two ranks: the comparison below is not one process twice
    for name in ("lora", "perturber"):
        one, two = _tensors(tmp_path / "one", name), _tensors(tmp_path / "two", name)
        assert one.keys() == two.keys()
        for key in one:
            assert torch.allclose(one[key], two[key], atol=1e-4, rtol=1e-3), (name, key)
    log = (tmp_path / "two" / "dynamics" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 3 and '"samples": 4' in log[0]      # rank 0 logged the global batch, once per step
    if evaluate:
        (res,) = (tmp_path / "results").glob("*/*/vqav2_val/results.json")
        data = json.loads(res.read_text())
        assert data["dataset"]["n_evaluated"] == 3 and data["counts"]["failed"] == 0
        manifest = json.loads((res.parent.parent / "manifest.json").read_text())
        assert manifest["world_size"] == 2 and manifest["tags"]["step"] == 3
