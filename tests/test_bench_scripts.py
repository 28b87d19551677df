"""Every benchmark under bench/ runs in its smallest configuration, so none of them rots (their figures are for the
README; these only check that they run and report what they promise)."""
import subprocess
import sys

import pytest

from conftest import ROOT


def _bench(*argv, timeout=900):
    proc = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_engine_benchmark_reports_each_kind_and_the_rerun():
    out = _bench("bench/engine.py", "--quick")
    for kind in ("understand", "generate", "embed"):
        assert f"\n{kind} " in out
    assert "worst overhead ratio" in out and "worst finished rerun" in out


def test_cache_open_benchmark_times_both_opens():
    out = _bench("bench/cache_open.py", "--quick")
    assert "open, read in full" in out and "open, unchanged since a clean close" in out


@pytest.mark.slow
def test_gpu_throughput_benchmark_runs_on_a_cpu_with_a_tiny_janus():
    out = _bench("bench/gpu_throughput.py", "--shape", "tiny", "--device", "cpu", "--batch-sizes", "2", "--batches", "1")
    assert "\nunderstand " in out and "\ngenerate " in out
    assert "VQAv2 val (214,354 questions)" in out and "GenEval (2,212 images)" in out


@pytest.mark.slow
def test_train_step_benchmark_reports_the_breakdown():
    out = _bench("bench/train_step.py", "--steps", "1", "--warmup", "0", "--repeats", "1", "--batch-size", "2",
                 "--hard-batch", "1")
    assert "unigame / sft per step" in out and "attack" in out and "hard rows per U step 1" in out
