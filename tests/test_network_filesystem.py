"""SQLite files on a network filesystem (a multi-node run's shared results folder, an NFS home) use the rollback
journal: WAL's shared-memory index cannot span hosts (sqlite.org/wal.html). No network filesystem is mounted here,
so the tests give the harness a /proc/mounts that says the test's folder is NFS, or force the journal."""
import json
import sqlite3

import pytest

from conftest import DOUBLES, run_cli
from harness import filesystems
from harness.errors import HarnessError

MOUNTS = """rootfs / rootfs rw 0 0
server:/export /mnt/my\\040data nfs4 rw,relatime 0 0
/dev/sda1 /mnt/my\\040data/local ext4 rw 0 0
lus@o2ib:/scratch /scratch lustre rw,flock 0 0
"""


@pytest.mark.parametrize("path, kind", [
    ("/mnt/my data/results/cache/responses.rank0.sqlite", "nfs4"),      # need not exist; \040 is a space
    ("/mnt/my data/local/results", "ext4"),                            # the innermost mount wins
    ("/scratch/u/results", "lustre"),
    ("/scratchpad/results", "rootfs"),                                 # a prefix of the name is not a parent
    ("/home/u", "rootfs"),
])
def test_the_filesystem_of_a_path_is_its_innermost_mount(path, kind):
    assert filesystems.filesystem_type(path, MOUNTS) == kind


def _network(monkeypatch, tmp_path, kind="nfs4"):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"rootfs / rootfs rw 0 0\nserver:/export {tmp_path} {kind} rw 0 0\n")
    monkeypatch.setattr(filesystems, "MOUNTS", mounts)
    monkeypatch.delenv(filesystems.JOURNAL_VARIABLE, raising=False)


def _journal(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


def test_a_network_filesystem_gets_the_rollback_journal_and_a_local_disk_wal(tmp_path, monkeypatch):
    _network(monkeypatch, tmp_path, "lustre")
    assert filesystems.journal_mode(tmp_path / "x.sqlite") == "DELETE"
    _network(monkeypatch, tmp_path, "ext4")
    assert filesystems.journal_mode(tmp_path / "x.sqlite") == "WAL"
    monkeypatch.setenv(filesystems.JOURNAL_VARIABLE, "delete")         # a FUSE filesystem the table lacks
    assert filesystems.journal_mode(tmp_path / "x.sqlite") == "DELETE"
    monkeypatch.setenv(filesystems.JOURNAL_VARIABLE, "memory")
    with pytest.raises(HarnessError, match="HARNESS_SQLITE_JOURNAL=memory: give wal .* or delete"):
        filesystems.journal_mode(tmp_path / "x.sqlite")


def test_a_run_on_a_network_filesystem_keeps_its_caches_in_rollback_mode_and_resumes(tmp_path, monkeypatch, doubles):
    from harness import hashmemo
    from harness.api import RunConfig, evaluate

    _network(monkeypatch, tmp_path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "home-cache"))      # the image-hash memo: an NFS home
    monkeypatch.setattr(hashmemo, "_connections", {})
    config = RunConfig(output=tmp_path / "results", progress=False, batch_size=4)
    first = evaluate(doubles.DoubleModel(), ["double_sum", "double_roundtrip"], config)
    shard = tmp_path / "results" / "cache" / "responses.rank0.sqlite"
    assert _journal(shard) == "delete" and not shard.with_name(shard.name + "-wal").exists()
    assert _journal(tmp_path / "home-cache" / "image-hashes.sqlite") == "delete"
    again = evaluate(doubles.DoubleModel(), ["double_sum", "double_roundtrip"], config)
    assert all(r.counts.cached == r.counts.requests for r in again.results.values())
    assert {t: r.metrics for t, r in again.results.items()} == {t: r.metrics for t, r in first.results.items()}


def test_shards_written_on_a_local_disk_move_to_the_rollback_journal_before_being_read(tmp_path, monkeypatch):
    from harness.cache import ResponseCache

    monkeypatch.setenv(filesystems.JOURNAL_VARIABLE, "wal")
    two = [ResponseCache(tmp_path / "cache", rank=r, world=2) for r in range(2)]      # an earlier 2-process run
    for r, cache in enumerate(two):
        cache.put_many([(f"k{r}", "model", "understand", "fp", {"text": str(r)})])
        cache.close()
    assert _journal(tmp_path / "cache" / "responses.rank1.sqlite") == "wal"
    _network(monkeypatch, tmp_path)
    # one process now, on the shared filesystem: it checks both shards and reads both
    one = ResponseCache(tmp_path / "cache", rank=0, world=1)
    assert [_journal(tmp_path / "cache" / f"responses.rank{r}.sqlite") for r in range(2)] == ["delete", "delete"]
    assert one.get_many(["k0", "k1"]) == {"k0": {"text": "0"}, "k1": {"text": "1"}}
    one.close()


def test_a_bad_journal_setting_is_refused_before_any_work(tmp_path):
    proc = run_cli("run", "--include", DOUBLES, "--model", "double-model", "--tasks", "double_sum",
                   "--output", tmp_path / "out", env={"HARNESS_SQLITE_JOURNAL": "off"})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: HARNESS_SQLITE_JOURNAL=off: give wal (one host uses the cache) or delete (a network filesystem "
        "several hosts use), or unset it to choose by filesystem"], proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_processes_in_rollback_mode_match_one(tmp_path, doubles):
    """Both ranks read each other's shard while writing their own, through file locks instead of WAL."""
    import os
    import subprocess

    from conftest import ROOT
    from test_distributed import _args, _outputs, _torchrun

    one = run_cli(*_args(tmp_path / "one", tmp_path / "one.log"))
    assert one.returncode == 0, one.stderr
    env = {**os.environ, filesystems.JOURNAL_VARIABLE: "delete", "HARNESS_CACHE": str(tmp_path / "home-cache")}
    two = subprocess.run(_torchrun(2, *_args(tmp_path / "two", tmp_path / "two.log")), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "two")
    shards = sorted((tmp_path / "two" / "cache").glob("responses.rank*.sqlite"))
    assert [_journal(s) for s in shards] == ["delete", "delete"]
    assert not list((tmp_path / "two" / "cache").glob("*-wal"))


def test_a_commit_cut_short_by_kill_9_is_rolled_back_not_reported_as_damage(tmp_path):
    """In rollback-journal mode a process killed mid-commit leaves a hot journal, which a read-only check cannot
    roll back ("attempt to write a readonly database"); the next run must roll it back, not refuse the shard."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from harness.cache import ResponseCache

    shard = tmp_path / "cache" / "responses.rank0.sqlite"
    script = f"""
import os
from pathlib import Path
from harness.cache import ResponseCache
cache = ResponseCache(Path({str(tmp_path / "cache")!r}))
cache.put_many([(f"k{{i}}", "model", "understand", "fp", {{"text": "kept"}}) for i in range(2000)])
conn = cache._own
conn.execute("PRAGMA cache_size=5")          # spill pages into the file before the commit, as a big batch does
conn.execute("BEGIN")
conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)",
                 [(f"k{{i}}", "model", "understand", "fp", '{{"text": "%s"}}' % ("x" * 300), 1) for i in range(2000)])
os._exit(9)
"""
    env = {**os.environ, filesystems.JOURNAL_VARIABLE: "delete"}
    killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert shard.with_name(shard.name + "-journal").exists()              # hot: the file holds half a commit
    cache = ResponseCache(tmp_path / "cache")
    assert cache.get_many([f"k{i}" for i in range(2000)]) == {f"k{i}": {"text": "kept"} for i in range(2000)}
    cache.close()
