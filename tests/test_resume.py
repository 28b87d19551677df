"""Kill a run with SIGKILL mid-way, or end it with SIGTERM, rerun it, and get the uninterrupted result with no
finished work redone."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import DOUBLES, ROOT, committed_model_rows, run_cli


def _cmd(out, log, delay):
    args = json.dumps({"log": str(log), "delay": delay})
    return ["run", "--include", DOUBLES, "--model", "double-model", "--model-args", args,
            "--tasks", "double_roundtrip,double_sum", "--batch-size", "2", "--output", str(out), "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("journal", ["wal", "delete"], ids=["local-disk", "network-filesystem"])
def test_sigkill_then_resume_recomputes_only_unfinished(tmp_path, doubles, journal):
    out, log1, log2 = tmp_path / "killed", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    env = {"HARNESS_SQLITE_JOURNAL": journal}          # the journal SQLite keeps on a local disk or a network one
    proc = subprocess.Popen([sys.executable, "-m", "harness", *_cmd(out, log1, 0.15)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    deadline = time.time() + 120
    while committed_model_rows(out) < 40 and time.time() < deadline:    # well into the run, mid-stage
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = committed_model_rows(out)
    total = 30 + 60 + 24                                       # describe + regenerate x2 + sums
    assert 40 <= committed < total

    done = run_cli(*_cmd(out, log2, 0.0), env=env)
    assert done.returncode == 0, done.stderr
    recomputed = sum(e["n"] for e in doubles.read_log(log2))
    assert recomputed == total - committed

    ref_out = tmp_path / "reference"
    ref = run_cli(*_cmd(ref_out, tmp_path / "ref.jsonl", 0.0))
    assert ref.returncode == 0, ref.stderr
    for task in ("double_roundtrip", "double_sum"):
        [a] = out.glob(f"*/*/{task}/results.json")
        [b] = ref_out.glob(f"*/*/{task}/results.json")
        assert json.loads(a.read_text())["metrics"] == json.loads(b.read_text())["metrics"]
        assert a.with_name("samples.jsonl").read_text() == b.with_name("samples.jsonl").read_text()
    [manifest] = out.glob("*/*/manifest.json")
    assert json.loads(manifest.read_text())["status"] == "complete"


def test_sigterm_stores_every_answer_computed_marks_the_run_interrupted_and_a_rerun_finishes_it(tmp_path, doubles):
    out, log1, log2 = tmp_path / "out", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "harness", *_cmd(out, log1, 0.15)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while committed_model_rows(out) < 20 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM): finished work is saved; rerun the same command to resume" in err
    assert "Traceback" not in err
    [manifest] = out.glob("*/*/manifest.json")
    assert json.loads(manifest.read_text())["status"] == "interrupted"
    calls = doubles.read_log(log1)
    committed = committed_model_rows(out)
    # every call that returned was stored; only the one the signal cut short (logged as it began) may be missing
    assert sum(c["n"] for c in calls[:-1]) <= committed <= sum(c["n"] for c in calls)

    total = 30 + 60 + 24
    done = run_cli(*_cmd(out, log2, 0.0))
    assert done.returncode == 0, done.stderr
    assert sum(c["n"] for c in doubles.read_log(log2)) == total - committed
    assert json.loads(manifest.read_text())["status"] == "complete"
