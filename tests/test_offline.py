"""With the hub out of reach, every hub lookup gives its one-line error within seconds: the first failed probe
switches the process to offline mode instead of letting each library retry for half a minute."""
import time

import pytest

from conftest import run_cli
from harness import hub

UNREACHABLE = "https://hub.invalid"          # .invalid never resolves (RFC 2606)


@pytest.mark.parametrize("env, reason", [({"HF_ENDPOINT": UNREACHABLE}, "the hub (https://hub.invalid) did not answer"),
                                         ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set")])
def test_a_hub_dataset_error_arrives_within_seconds(tmp_path, env, reason):
    env = {**env, "HF_HOME": str(tmp_path / "hf"), "HARNESS_CACHE": str(tmp_path / "cache")}
    started = time.monotonic()
    proc = run_cli("run", "--tasks", "pope", "--data", "hub:lmms-lab/POPE", "--output", tmp_path / "out",
                   "--no-progress", env=env)
    seconds = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Retrying" not in proc.stderr, proc.stderr
    assert reason in lines[0] and "`hf download --repo-type dataset lmms-lab/POPE`" in lines[0]
    assert "huggingface-cli" not in lines[0]
    assert seconds < 20, seconds          # most of it is importing torch; the retrying libraries took 25 s or more


def test_a_failed_probe_puts_every_library_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", UNREACHABLE)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    assert hub.online() is False
    assert time.monotonic() - started < hub.PROBE_TIMEOUT_S + 1
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True and hub.offline()
    assert "did not answer" in hub.offline_reason()
    started = time.monotonic()
    assert hub.online() is False and time.monotonic() - started < 0.1      # asked once per process


def test_a_refusing_proxy_counts_as_unreachable(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")                # discard port: connection refused
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert hub.reachable("https://huggingface.co/api") is False


def test_release_files_are_fetched_only_when_their_host_answers(tmp_path, monkeypatch):
    from harness.errors import DataError
    from tasks.downloads import cached_file

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(DataError, match=r"hub\.invalid did not answer: fetch https://hub\.invalid/f\.json to "):
        cached_file("https://hub.invalid/f.json", "x/f.json", what="a file", alternative="or pass --data PATH")
    assert time.monotonic() - started < hub.PROBE_TIMEOUT_S + 1


@pytest.mark.parametrize("task", ["geneval", "unified_bench", "unified_bench_uae"])
def test_tasks_whose_data_is_not_a_hub_dataset_refuse_hub_copies(tmp_path, task):
    proc = run_cli("run", "--tasks", task, "--data", "hub:someone/copy", "--output", tmp_path, "--no-progress")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: task {task} does not accept --data hub:someone/copy; it reads the "
                                   "benchmark's released files (omit --data), a local copy (--data PATH), the "
                                   "embedded world (--data shapes)")
