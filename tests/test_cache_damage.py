"""A damaged or read-only response cache never takes a finished run with it: one line naming the shard and the way
on, nothing changed (the finished run's manifest stays `complete`), and `--repair-cache` keeps what still reads
and recomputes only the rest."""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time

import pytest

from conftest import DOUBLES, run_cli

TASKS = "double_roundtrip,double_sum"
TOTAL = 30 + 60 + 24                     # the double model's requests: describe + regenerate x2 + sums


def _cmd(out, log, *extra):
    return ["run", "--include", DOUBLES, "--model", "double-model", "--model-args", json.dumps({"log": str(log)}),
            "--tasks", TASKS, "--batch-size", "4", "--output", out, "--no-progress", *extra]


def _results(out) -> dict:
    """The run folders' files, byte for byte."""
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.glob("*/*/**/*")) if p.is_file()}


def _computed(log) -> int:
    return sum(json.loads(line)["n"] for line in log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "results"
    proc = run_cli(*_cmd(out, tmp_path / "first.log"))
    assert proc.returncode == 0, proc.stderr
    return out, _results(out)


def _rows(shard) -> list[tuple]:
    conn = sqlite3.connect(f"file:{shard}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT target, created FROM responses").fetchall()
    finally:
        conn.close()


def _truncate(shard):
    os.truncate(shard, shard.stat().st_size // 2)


def _garbage(shard):
    shard.write_bytes(random.Random(0).randbytes(shard.stat().st_size))


def _overwrite_pages(shard):
    with open(shard, "r+b") as f:          # the header survives, two pages of answers in the middle do not
        f.seek(shard.stat().st_size // 3)
        f.write(random.Random(1).randbytes(8192))


@pytest.mark.parametrize("damage", [_truncate, _garbage, _overwrite_pages], ids=lambda f: f.__name__[1:])
def test_a_damaged_shard_is_reported_and_changes_nothing(finished, tmp_path, damage):
    out, before = finished
    shard = out / "cache" / "responses.rank0.sqlite"
    assert _checked_record(shard).exists()          # the record of a clean close does not hide damage done since
    damage(shard)
    damaged = shard.read_bytes()
    [run_dir] = [m.parent for m in out.glob("*/*/manifest.json")]
    for cmd in (_cmd(out, tmp_path / "again.log"), ["rescore", "--include", DOUBLES, run_dir]):
        proc = run_cli(*cmd)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert str(shard) in err and "damaged" in err and "--repair-cache" in err and "nothing has been changed" in err
    assert _results(out) == before                                      # the manifest still says complete
    assert shard.read_bytes() == damaged and _computed(tmp_path / "again.log") == 0


@pytest.mark.parametrize("damage", [_truncate, _garbage, _overwrite_pages], ids=lambda f: f.__name__[1:])
def test_repair_cache_keeps_what_reads_and_recomputes_the_rest(finished, tmp_path, damage):
    out, before = finished
    shard = out / "cache" / "responses.rank0.sqlite"
    rows = len(_rows(shard))                                            # model answers and the scorer's
    damage(shard)
    started = time.time()
    proc = run_cli(*_cmd(out, tmp_path / "repair.log", "--repair-cache"))
    assert proc.returncode == 0, proc.stderr
    kept = int(proc.stderr.split("; ")[1].split()[0])                   # "...; N answers could still be read..."
    assert f"repaired {shard}" in proc.stderr
    rebuilt = _rows(shard)
    assert len(rebuilt) == rows                                         # every answer is back
    assert sum(created < started for _, created in rebuilt) == kept     # kept ones were not recomputed...
    recomputed = sum(created >= started and target == "model" for target, created in rebuilt)
    assert _computed(tmp_path / "repair.log") == recomputed             # ...only the lost ones were
    if damage is _garbage:
        assert kept == 0 and recomputed == TOTAL
    else:
        assert 0 < kept < rows and 0 < recomputed < TOTAL
    [aside] = (out / "cache").glob("responses.rank0.sqlite.damaged-*[0-9]")
    assert aside.stat().st_size > 0                                     # moved aside, never deleted
    after = _results(out)
    for path, content in before.items():                                # the same answers, the same scores
        if path.name == "results.json":
            assert json.loads(after[path])["metrics"] == json.loads(content)["metrics"], path
        elif path.name != "manifest.json":
            assert after[path] == content, path
    again = run_cli(*_cmd(out, tmp_path / "third.log"))
    assert again.returncode == 0 and _computed(tmp_path / "third.log") == 0


def _checked_record(shard):
    return shard.with_name(shard.name + ".checked")


def _full_checks(monkeypatch) -> list:
    import harness.cache

    checked = []
    monkeypatch.setattr(harness.cache, "damage", lambda path, real=harness.cache.damage: (checked.append(path.name),
                                                                                       real(path))[1])
    return checked


def test_a_shard_unchanged_since_a_clean_close_is_not_read_in_full_again(finished, monkeypatch):
    from harness.cache import ResponseCache

    out, _ = finished
    shard = out / "cache" / "responses.rank0.sqlite"
    checked = _full_checks(monkeypatch)
    cache = ResponseCache(out / "cache")
    assert checked == []                            # the run that wrote it closed it cleanly
    cache.put_many([("k", "model", "understand", "fp", {"text": "yes"})])
    cache.close()
    ResponseCache(out / "cache").close()
    assert checked == []                            # nor after this process's own clean write

    left_open = sqlite3.connect(shard)              # a process killed mid-run leaves its WAL behind
    left_open.execute("INSERT INTO responses VALUES ('k2', 'model', 'understand', 'fp', '{}', 0)")
    left_open.commit()
    try:
        ResponseCache(out / "cache").close()
        assert checked == [shard.name]
    finally:
        left_open.close()                           # the last connection: its WAL goes, so one more check
    ResponseCache(out / "cache").close()
    ResponseCache(out / "cache").close()
    assert checked == [shard.name] * 2
    stat = shard.stat()                             # touched by something other than this cache, nothing else
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    ResponseCache(out / "cache").close()
    assert checked == [shard.name] * 3
    ResponseCache(out / "cache", repair=True).close()
    assert checked == [shard.name] * 4             # --repair-cache always reads every page


def test_a_shard_another_rank_was_reading_at_its_close_is_not_read_in_full_again(tmp_path, monkeypatch):
    """Rank 0 reads rank 1's shard: rank 1's clean close cannot remove the WAL while that reader is open, and a
    read-only reader never removes it. The record covers the WAL, so the next run does not check the shard again."""
    from harness.cache import ResponseCache

    folder = tmp_path / "cache"
    rank0, rank1 = ResponseCache(folder, rank=0, world=2), ResponseCache(folder, rank=1, world=2)
    rank1.put_many([("k", "model", "understand", "fp", {"text": "yes"})])
    assert rank0.get_many(["k"]) == {"k": {"text": "yes"}}
    rank1.close()
    rank0.close()
    assert (folder / "responses.rank1.sqlite-wal").exists()
    checked = _full_checks(monkeypatch)
    for rank in (0, 1):
        ResponseCache(folder, rank=rank, world=2).close()
    assert checked == []


def test_damage_that_keeps_size_and_time_fails_at_first_read_and_is_then_reported(finished, tmp_path):
    """A page rewritten in place with the file's size and time restored (as bit rot would leave it) passes the
    open, which trusts the record: the first lookup that reads it stops the run in one line, nothing computed is
    lost, and the next command checks the shard in full."""
    out, before = finished
    shard = out / "cache" / "responses.rank0.sqlite"
    stat = shard.stat()
    _overwrite_pages(shard)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    proc = run_cli(*_cmd(out, tmp_path / "again.log"))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "--repair-cache" in err and _computed(tmp_path / "again.log") == 0
    assert not _checked_record(shard).exists(), err
    proc = run_cli(*_cmd(out, tmp_path / "third.log"))
    assert proc.returncode == 2 and "damaged" in proc.stderr and "nothing has been changed" in proc.stderr
    proc = run_cli(*_cmd(out, tmp_path / "repair.log", "--repair-cache"))
    assert proc.returncode == 0, proc.stderr
    after = _results(out)
    for path, content in before.items():
        if path.name == "results.json":
            assert json.loads(after[path])["metrics"] == json.loads(content)["metrics"], path


def test_a_leaf_page_damaged_behind_the_record_fails_the_lookup_that_reads_it(tmp_path):
    """The open's write check need not touch a damaged page: the lookup that does stops the run with the cache's
    one-line error, and the next open checks the shard in full and names it."""
    from harness.cache import ResponseCache
    from harness.errors import CacheError

    folder = tmp_path / "cache"
    cache = ResponseCache(folder)
    keys = [f"{i:064d}" for i in range(300)]
    cache.put_many([(k, "scorer:clip", "embed", "fp", {"values": {"embedding": [0.5] * 200}}) for k in keys])
    cache.close()
    shard = folder / "responses.rank0.sqlite"
    page = 4096
    data, stat = shard.read_bytes(), shard.stat()
    leaves = [n for n in range(1, len(data) // page) if data[n * page] == 0x0D]       # table b-tree leaf pages
    with open(shard, "r+b") as f:
        f.seek(leaves[len(leaves) // 2] * page + 8)
        f.write(random.Random(2).randbytes(page - 8))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cache = ResponseCache(folder)
    with pytest.raises(CacheError, match="failed during the run .*--repair-cache"):
        cache.get_many(keys)
    cache.close()
    assert not _checked_record(shard).exists()
    with pytest.raises(CacheError, match="damaged"):
        ResponseCache(folder)


def _read_only(path):
    """chmod for a normal user; root ignores modes, so the file is made immutable instead."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("running as root without chattr: no way to make a file read-only")
    return lambda: subprocess.run(["chattr", "-i", str(path)])


def test_a_read_only_cache_is_a_clear_error(finished, tmp_path):
    out, before = finished
    shard = out / "cache" / "responses.rank0.sqlite"
    undo = _read_only(shard)
    try:
        proc = run_cli(*_cmd(out, tmp_path / "ro.log", "--overwrite"))
    finally:
        undo()
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert str(shard) in err and "cannot be written" in err and "--no-cache" in err
    assert _results(out) == before and _computed(tmp_path / "ro.log") == 0
    assert run_cli(*_cmd(out, tmp_path / "nc.log", "--no-cache")).returncode == 0      # the way on it offers
