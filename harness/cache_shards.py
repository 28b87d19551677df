"""The response cache's shard files: their schema, opening them, telling a damaged one, and `--repair-cache`.

A shard is damaged when it is not SQLite, is truncated or fails SQLite's quick_check. `--repair-cache` renames it
(and its WAL or journal, if any) to `<shard>.damaged-<time>`, never deleting it, so nothing is lost that a better
tool could recover later, and reads its rows back as far as SQLite can: a truncated file is first padded (in a
temporary copy) to the length its header declares, so the pages that survived stay reachable; rows are then read by
the rowids the key index lists or, when the index is damaged too, by rowid ranges, halving a range that hits a
damaged page down to single rows. Rows whose payload is not a JSON object are dropped. The survivors go into a fresh
shard under the original name; everything else is recomputed by the run that asked for the repair.

quick_check reads every page (half a second per GB from the page cache, bench/cache_open.py; more from a cold disk
or a network filesystem), and a results folder's cache grows with every model and checkpoint evaluated into it. So a
shard that passed it, or that a process closed cleanly after writing only through SQLite, gets a `<shard>.checked`
record of its size, modification time and inode, and its WAL's and journal's; while they all match, the next open does
not read it again. A killed run's writes change them, so its shard is checked in full. `--repair-cache` always is.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import struct
import time
from pathlib import Path

from harness.filesystems import journal_mode
from harness.store import write_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
)
"""
SQLITE_MAGIC = b"SQLite format 3\x00"
#: the files SQLite keeps beside a database: WAL mode's log and shared-memory index, the rollback journal
SIDECARS = ("-wal", "-shm", "-journal")
SHARD = re.compile(r"^responses\.rank(\d+)\.sqlite$")


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        # commits come from the executor's write-behind thread, lookups from the main thread, never at once
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        # WAL on a local disk; on a network filesystem (a multi-node run's shared results folder) the rollback
        # journal, as WAL's shared memory cannot span hosts (harness/filesystems.py)
        conn.execute(f"PRAGMA journal_mode={journal_mode(path)}")
        # NORMAL is durable against process crashes (the case we promise); only power loss may cost the last
        # transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)
        conn.commit()
    return conn


def damage(path: Path) -> str | None:
    """Why a shard cannot be trusted (not SQLite, truncated, failing quick_check), or None when it reads fine."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    if not head:
        return None                      # SQLite's empty database: a shard created but never written
    if not head.startswith(SQLITE_MAGIC) or len(head) < 100:
        return "not an SQLite database (overwritten or cut short)"
    roll_back_hot_journal(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return str(e)
    if rows != [("ok",)]:
        return " ".join(" ".join(str(r[0]) for r in rows[:3]).split())[:300]
    return None


def _stat(path: Path) -> list | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _identity(path: Path) -> dict:
    """The shard's and its WAL's and journal's size, modification time and inode (None for a file that is absent):
    a WAL a reader kept open outlives the writer's clean close, and writes a killed run made change one of them."""
    return {name: _stat(path.with_name(path.name + suffix))
            for name, suffix in (("shard", ""), ("wal", "-wal"), ("journal", "-journal"))}


def _checked_record(path: Path) -> Path:
    return path.with_name(path.name + ".checked")


def unchanged_since_check(path: Path) -> bool:
    """The shard (with its WAL or journal) is what last passed the check or was closed cleanly, as far as sizes,
    modification times and inodes tell."""
    try:
        recorded = json.loads(_checked_record(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _identity(path)


def record_checked(path: Path) -> None:
    """Remember the shard as it is now (it just passed the check, or SQLite alone wrote it since it did)."""
    identity = _identity(path)
    if identity["shard"] is None or not identity["shard"][0]:
        return
    try:
        write_bytes(_checked_record(path), (json.dumps(identity) + "\n").encode(), fsync=False)
    except OSError:              # a read-only cache folder: every open checks in full, as before
        pass


def forget_check(path: Path) -> None:
    """A shard found damaged while in use is checked in full at the next open, and reported there."""
    try:
        _checked_record(path).unlink(missing_ok=True)
    except OSError:
        pass


def roll_back_hot_journal(path: Path) -> None:
    """A process killed mid-commit in rollback-journal mode (a network filesystem) leaves a hot `-journal`, which
    a read-only connection cannot roll back ("attempt to write a readonly database"): a read-write connection's
    first read restores the last committed state, as SQLite's own recovery does. Without a journal, nothing."""
    journal = path.with_name(path.name + "-journal")
    if not journal.exists():
        return
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        pass            # the read-only check that follows says what is wrong


def shard_index(path: Path) -> int | None:
    m = SHARD.match(path.name)
    return int(m.group(1)) if m else None



COLUMNS = "key, target, kind, fingerprint, payload, created"
#: rowid ranges read at once; a range hitting damage is halved down to single rows
CHUNK = 512
#: stop scanning for rows after this many empty ranges past the last row found (rowids have gaps from REPLACE)
EMPTY_RANGES = 16


def repair_shard(path: Path) -> tuple[Path, int]:
    """Move `path` aside and rebuild it from its readable rows; (the damaged file's new path, rows kept)."""
    stamp, n = time.strftime("%Y%m%d-%H%M%S"), 0
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    while aside.exists():          # never overwrite an earlier damaged copy
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, aside)
    forget_check(path)
    for suffix in SIDECARS:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    rows = salvage(aside)
    conn = connect(path, readonly=False)
    try:
        with conn:
            conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)", rows)
    finally:
        conn.close()
    return aside, len(rows)


def salvage(damaged: Path) -> list[tuple]:
    """Every row of the responses table that can still be read from a damaged shard (read from a padded copy)."""
    work = damaged.with_name(f".{damaged.name}.salvage")
    try:
        shutil.copyfile(damaged, work)
        for suffix in ("-wal", "-journal"):
            side = damaged.with_name(damaged.name + suffix)
            if side.exists():
                shutil.copyfile(side, work.with_name(work.name + suffix))
        roll_back_hot_journal(work)
        _pad_to_declared_size(work)
        try:
            conn = sqlite3.connect(f"file:{work}?mode=ro", uri=True)
        except sqlite3.DatabaseError:
            return []
        try:
            return [r for r in _rows(conn) if _valid(r)]
        finally:
            conn.close()
    finally:
        for p in (work, *(work.with_name(work.name + suffix) for suffix in SIDECARS)):
            p.unlink(missing_ok=True)


def _pad_to_declared_size(path: Path) -> None:
    """A truncated database is refused as a whole; padded to its declared page count, the pages still there read."""
    with open(path, "r+b") as f:
        head = f.read(100)
        if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
            return
        page = struct.unpack(">H", head[16:18])[0]
        page = 65536 if page == 1 else page
        pages = struct.unpack(">I", head[28:32])[0]
        f.seek(0, os.SEEK_END)
        if page and pages and f.tell() < page * pages:
            f.truncate(page * pages)


def _query(conn, lo: int, hi: int) -> list[tuple] | None:
    try:
        return conn.execute(f"SELECT {COLUMNS} FROM responses WHERE rowid BETWEEN ? AND ?", (lo, hi)).fetchall()
    except sqlite3.DatabaseError:
        return None


def _rows(conn) -> list[tuple]:
    try:   # an intact table (the damage elsewhere): one pass
        return conn.execute(f"SELECT {COLUMNS} FROM responses").fetchall()
    except sqlite3.DatabaseError:
        pass
    try:   # without a readable schema there is no table to read rows from
        conn.execute("SELECT name FROM sqlite_master WHERE name = 'responses'").fetchall()
    except sqlite3.DatabaseError:
        return []
    try:   # the key index holds every rowid: when it survived, read exactly those rows
        rowids = [r[0] for r in conn.execute("SELECT rowid FROM responses INDEXED BY sqlite_autoindex_responses_1")]
        return [row for rid in rowids for row in (_query(conn, rid, rid) or [])]
    except sqlite3.DatabaseError:
        pass
    out: list[tuple] = []
    lo, empty = 1, 0
    while empty < EMPTY_RANGES:
        found = _range(conn, lo, lo + CHUNK - 1)
        out.extend(found)
        empty = 0 if found else empty + 1
        lo += CHUNK
    return out


def _range(conn, lo: int, hi: int) -> list[tuple]:
    rows = _query(conn, lo, hi)
    if rows is not None:
        return rows
    if lo == hi:
        return []
    mid = (lo + hi) // 2
    return _range(conn, lo, mid) + _range(conn, mid + 1, hi)


def _valid(row: tuple) -> bool:
    if len(row) != 6 or not all(isinstance(v, str) for v in row[:5]) or not row[0]:
        return False
    try:
        return isinstance(json.loads(row[4]), dict)
    except ValueError:
        return False
