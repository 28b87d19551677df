"""Data-parallel evaluation with 2 processes (torchrun, gloo) against 1 process, and resume across world sizes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import DOUBLES, ROOT, committed_model_rows, run_cli
from srun_double import srun

pytestmark = pytest.mark.slow
TASKS = "double_roundtrip,double_sum"
TOTAL_MODEL_REQUESTS = 30 + 60 + 24


def _torchrun(nproc: int, *args) -> list[str]:
    # the README's launch command, with the CPU-only gloo backend chosen by the harness
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "harness", *map(str, args)]


def _accelerate(nproc: int, *args) -> list[str]:
    # the README's `accelerate launch --multi_gpu --num_processes N -m harness run ...` (accelerate's --cpu would
    # start a single process; --multi_gpu starts N, and without GPUs the harness falls back to gloo on the CPU)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "harness",
            *map(str, args)]


def _args(out, log, delay=0.0):
    return ["run", "--include", DOUBLES, "--model", "double-model", "--model-args",
            json.dumps({"log": str(log), "delay": delay}), "--tasks", TASKS, "--batch-size", "2",
            "--output", out, "--no-progress"]


def _outputs(out) -> dict:
    got = {}
    for task in TASKS.split(","):
        [res] = out.glob(f"*/*/{task}/results.json")
        got[task] = (json.loads(res.read_text())["metrics"], json.loads(res.read_text())["counts"]["requests"],
                     res.with_name("samples.jsonl").read_text())
    return got


def _srun(nproc: int, *args) -> list[str]:
    # `srun --ntasks N python -m harness run ...`: srun starts the N tasks itself (tests/srun_double.py stands in)
    return [sys.executable, "-m", "harness", *map(str, args)]


@pytest.mark.parametrize("launcher", [_torchrun, _accelerate, _srun], ids=["torchrun", "accelerate", "srun"])
def test_two_processes_match_one(tmp_path, doubles, launcher):
    one = run_cli(*_args(tmp_path / "one", tmp_path / "one.log"))
    assert one.returncode == 0, one.stderr
    argv = launcher(2, *_args(tmp_path / "two", tmp_path / "two.log"))
    if launcher is _srun:
        two = srun(argv, 2, cwd=ROOT, timeout=300)
    else:
        two = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "two")
    pids = {e["pid"] for e in doubles.read_log(tmp_path / "two.log")}
    assert len(pids) == 2                                           # both ranks did model work
    assert sorted(p.name for p in (tmp_path / "two" / "cache").glob("*.sqlite")) == [
        "responses.rank0.sqlite", "responses.rank1.sqlite"]
    assert two.stdout.count("results: ") == 1                       # only rank 0 reports
    assert not list((tmp_path / "two").rglob(".shard.*"))           # shards merged and removed


def test_a_rank_that_runs_out_of_memory_is_recorded_and_the_answers_match_one_process(tmp_path, doubles):
    def args(out, model_args):
        return ["run", "--include", DOUBLES, "--model", "double-oom-model", "--model-args", json.dumps(model_args),
                "--tasks", TASKS, "--batch-size", "4", "--output", out, "--no-progress"]

    one = run_cli(*args(tmp_path / "one", {"fits": 4}))
    assert one.returncode == 0, one.stderr
    # rank 1 has room for 2 requests at a time, rank 0 for all 4
    two = subprocess.run(_torchrun(2, *args(tmp_path / "two", {"fits": 4, "rank_fits": {"1": 2}})), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 1: model.understand: out of memory with 4 requests in a batch" in two.stderr
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "two")
    [manifest] = (tmp_path / "two").glob("*/*/manifest.json")
    invocation = json.loads(manifest.read_text())["invocations"][-1]
    assert invocation["batch_limits"] == {"model.understand": 2, "model.generate": 2}
    assert "other_hardware" not in invocation                      # both ranks on this machine
    assert not list((tmp_path / "two").rglob(".shard.*"))           # every rank's report read and removed


def test_kill_two_processes_resume_with_one(tmp_path, doubles):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_torchrun(2, *_args(out, tmp_path / "first.log", delay=0.15)), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while committed_model_rows(out) < 30 and time.time() < deadline:
        time.sleep(0.05)
    # torchrun starts each rank in a session of its own: kill -9 the ranks themselves, then the launcher
    ranks = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                            text=True).stdout.split()]
    assert len(ranks) == 2
    for pid in ranks:
        os.kill(pid, signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pid in ranks:
        while os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read():
            time.sleep(0.02)
    committed = committed_model_rows(out)
    assert 30 <= committed < TOTAL_MODEL_REQUESTS
    resumed = run_cli(*_args(out, tmp_path / "second.log"))
    assert resumed.returncode == 0, resumed.stderr
    assert sum(e["n"] for e in doubles.read_log(tmp_path / "second.log")) == TOTAL_MODEL_REQUESTS - committed
    ref = run_cli(*_args(tmp_path / "ref", tmp_path / "ref.log"))
    assert ref.returncode == 0
    assert _outputs(out) == _outputs(tmp_path / "ref")


def _generated(out, task: str) -> list:
    """Per document: each model request's kind, prompt and answer (image hashes for generate, text otherwise)."""
    [samples] = out.glob(f"*/*/{task}/samples.jsonl")
    got = []
    for line in samples.read_text().splitlines():
        doc = json.loads(line)
        for stage, entries in sorted(doc["requests"].items()):
            for e in entries:
                if e["target"] == "model":
                    got.append((doc["doc_id"], stage, e["kind"], e.get("text"),
                                e["response"].get("images") or e["response"].get("text")))
    return got


def test_one_and_two_processes_draw_the_same_images_on_the_cpu(tmp_path):
    """The bundled model's UnifiedBench round trips (caption sampled, then an image drawn from it) with 1 process and
    with 2: the same captions and the same image bytes, not only the same metrics. A lone process would take every
    core (here OMP_NUM_THREADS=2) and torchrun gives each process one thread; both run with --threads' count."""
    args = ["run", "--tasks", "unified_bench", "--data", "shapes", "--limit", "16", "--no-progress"]
    one = run_cli(*args, "--output", tmp_path / "one", env={"OMP_NUM_THREADS": "2"})
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(_torchrun(2, *args, "--output", tmp_path / "two"), cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _generated(tmp_path / "one", "unified_bench"), _generated(tmp_path / "two", "unified_bench")
    assert len([x for x in a if x[2] == "generate"]) == 16
    assert a == b
    for out in (tmp_path / "one", tmp_path / "two"):
        [manifest] = out.glob("*/*/manifest.json")
        det = json.loads(manifest.read_text())["determinism"]
        assert det["threads"] == 1 and det["torch"]["num_threads"] == 1
    [ra], [rb] = (list(o.glob("*/*/unified_bench/results.json")) for o in (tmp_path / "one", tmp_path / "two"))
    assert json.loads(ra.read_text())["metrics"] == json.loads(rb.read_text())["metrics"]


def test_a_successful_command_leaves_the_process_group_so_teardown_cannot_abort(tmp_path, monkeypatch):
    """A gloo group still alive at interpreter exit can abort the process ("terminate called without an active
    exception"), failing a finished run under torchrun; the CLI destroys it once the command has succeeded."""
    import torch.distributed as td

    from harness.cli import main

    td.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        assert main(["tasks"]) == 0
        assert not td.is_initialized()
    finally:
        if td.is_initialized():
            td.destroy_process_group()
