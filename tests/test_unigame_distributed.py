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

from srun_double import srun  # noqa: E402
from unigame.testing import tiny_janus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _launch(prefix: list[str], out: Path, model: Path, method: list[str], extra: tuple = (),
            srun_tasks: int = 0) -> str:
    argv = ["train", "--model", str(model), "--data", "shapes", "--shapes-scenes", "6", "--batch-size", "4",
            "--steps", "3", "--warmup", "1", "--lora-dropout", "0", "--scene-check", "off", "--no-plots",
            "--output", str(out), *method, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if srun_tasks:          # srun starts the tasks itself; tests/srun_double.py stands in for it
        proc = srun([*prefix, "-m", "unigame", *argv], srun_tasks, cwd=ROOT, env=env, timeout=600)
    else:
        proc = subprocess.run([*prefix, "-m", "unigame", *argv], capture_output=True, text=True, cwd=ROOT, env=env,
                              timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _tensors(out: Path, name: str) -> dict:
    from safetensors.torch import load_file

    (ckpt,) = (out / "checkpoints").glob("*-step000003")
    return load_file(str(ckpt / "training" / f"{name}.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate", "fsdp", "srun"])
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
                "--results", str(tmp_path / "results")) if launcher in ("torchrun", "srun") else ()
    if launcher == "fsdp":       # sharded LoRA and optimiser state through a stop and a resume
        _launch(prefix, tmp_path / "two", model, method, ("--fsdp", "--stop-at", "2"))
        said = _launch(prefix, tmp_path / "two", model, method, ("--fsdp", "--resume"))
    elif launcher == "srun":
        said = _launch([sys.executable], tmp_path / "two", model, method, evaluate, srun_tasks=2)
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


def _worker_pid(rank: int, marker: str) -> int | None:
    """The pid of the torchrun worker of this rank whose command line names `marker` (its --output)."""
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or marker not in (proc / "cmdline").read_text():
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and any(e.startswith(b"TORCHELASTIC_RUN_ID=") for e in env):
            return int(proc.name)
    return None


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_every_rank_after_the_same_step_with_that_step_saved(tmp_path):
    """A scheduler may signal one process before the others: the ranks agree at the step's own gather, so none
    is left waiting in a collective, and the step all of them finished is the checkpoint."""
    import signal
    import time

    model, out = tiny_janus(tmp_path / "janus"), tmp_path / "two"
    argv = ["train", "--model", str(model), "--data", "shapes", "--shapes-scenes", "6", "--batch-size", "4",
            "--steps", "400", "--method", "sft", "--no-plots", "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "unigame", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=env, start_new_session=True)
    log = out / "dynamics" / "train_log.jsonl"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
            time.sleep(0.1)
        pid = _worker_pid(1, str(out))
        assert pid is not None, "no rank-1 worker found"
        os.kill(pid, signal.SIGTERM)
        # a rank left waiting in a collective for the one that stopped would hang here
        said, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    stopped = steps[-1]
    assert 3 <= stopped < 400 and steps == list(range(1, stopped + 1)), said[-3000:]
    assert f"SIGTERM: stopped after step {stopped}, saved as" in said, said[-3000:]
    assert said.count("terminated (SIGTERM)") == 1, said[-3000:]          # one line for the job, not one per rank
    (ckpt,) = (out / "checkpoints").glob(f"*-step{stopped:06d}")
    assert (ckpt / "training" / "lora.safetensors").exists()
