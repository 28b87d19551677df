"""Kill a run with SIGKILL mid-way, rerun it, and get the uninterrupted result with no finished work redone."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import DOUBLES, ROOT, run_cli


def _model_rows(out) -> int:
    total = 0
    for db in (out / "cache").glob("responses.rank*.sqlite"):
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            total += conn.execute("SELECT COUNT(*) FROM responses WHERE target='model'").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            pass
    return total


def _cmd(out, log, delay):
    args = json.dumps({"log": str(log), "delay": delay})
    return ["run", "--include", DOUBLES, "--model", "double-model", "--model-args", args,
            "--tasks", "double_roundtrip,double_sum", "--batch-size", "2", "--output", str(out), "--no-progress"]


@pytest.mark.slow
def test_sigkill_then_resume_recomputes_only_unfinished(tmp_path, doubles):
    out, log1, log2 = tmp_path / "killed", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "harness", *_cmd(out, log1, 0.15)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _model_rows(out) < 40 and time.time() < deadline:    # well into the run, mid-stage
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = _model_rows(out)
    total = 30 + 60 + 24                                       # describe + regenerate x2 + sums
    assert 40 <= committed < total

    done = run_cli(*_cmd(out, log2, 0.0))
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
