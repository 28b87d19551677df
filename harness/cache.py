"""Write-through response cache: SQLite (WAL mode on a local disk), one shard file per process rank.

Each process writes only its own shard (no two processes ever write one file; on a network filesystem the shards use
SQLite's rollback journal, as WAL cannot span hosts: harness/filesystems.py) and reads every shard, so a run resumed
with a different number of processes still finds all finished work. One transaction per finished batch: a crash or
`kill -9` loses at most the batch in flight.

Opening the cache checks it before any run folder is touched (harness.api opens it first): a shard that is not
SQLite, is truncated or fails SQLite's quick_check is reported in one line, and nothing changes unless the user
asks for `--repair-cache` (harness/cache_shards.py: the shard is moved aside, what can still be read is kept, the
rest is recomputed); a shard or folder that cannot be written is reported before any work instead of failing on
the first commit. A shard unchanged since it last passed the check, or since a process closed it cleanly, is not
read in full again (harness/cache_shards.py); damage found while it is in use fails the run in one line instead.
"""
from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from harness.cache_shards import (connect, damage, forget_check, record_checked, repair_shard, shard_index,
                                  unchanged_since_check)
from harness.errors import CacheError
from harness.filesystems import journal_mode

class ResponseCache:
    """Key -> payload store shared by every runner of a run.

    Rank r checks (and with `repair` repairs) the shards r, r + world, r + 2 world...: its own, and those of ranks
    an earlier run had that this one has not, so no two processes ever repair the same file."""

    def __init__(self, directory: str | Path, rank: int = 0, world: int = 1, repair: bool = False,
                 say: Callable[[str], None] | None = None):
        self.dir = Path(directory)
        say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"{self.dir}: cannot create the response cache folder ({e.strerror}); make the "
                             "output folder writable, or pass --no-cache to run without the cache") from None
        self.own_path = self.dir / f"responses.rank{rank}.sqlite"
        mine = {p for p in self.dir.glob("responses.rank*.sqlite") if (shard_index(p) or 0) % world == rank}
        for path in sorted(mine | {self.own_path}):
            if not repair and unchanged_since_check(path):
                continue
            reason = damage(path)
            if reason is None:
                record_checked(path)
                continue
            if not repair:
                raise CacheError(f"{path}: this response cache shard is damaged ({reason}); nothing has been "
                                 "changed. Rerun with --repair-cache to move it aside, keep the answers that can "
                                 "still be read and recompute the rest, or with --no-cache to run without the cache")
            aside, kept = repair_shard(path)
            say(f"repaired {path}: the damaged shard is now {aside.name}; {kept} answers could still be read and "
                "are kept, the rest will be recomputed")
        # a shard of a rank this run does not have, written in WAL mode on a local disk, now read from several
        # hosts: its checking rank moves it to the journal this filesystem needs before any rank reads it (the
        # shards share one folder, so one filesystem)
        absent = sorted(mine - {self.own_path})
        if absent and journal_mode(self.own_path) == "DELETE":
            for path in absent:
                if not path.stat().st_size:
                    continue
                try:
                    connect(path, readonly=False).close()
                except sqlite3.Error:       # read-only: it is still read, as before
                    pass
        self._own = self._open_own()
        self._others: dict[Path, sqlite3.Connection] = {}
        self._failed_once = False

    def _open_own(self) -> sqlite3.Connection:
        """The writable shard, proven writable by a write that is rolled back (a read-only file opens fine and
        would only fail at the first commit, mid-run)."""
        try:
            conn = connect(self.own_path, readonly=False)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO responses VALUES ('', '', '', '', '{}', 0)")
            conn.execute("ROLLBACK")
            return conn
        except sqlite3.OperationalError as e:
            raise CacheError(f"{self.own_path}: the response cache cannot be written ({e}); make it and its folder "
                             "writable, or pass --no-cache to run without reading or writing the cache") from None
        except sqlite3.DatabaseError as e:
            forget_check(self.own_path)
            raise CacheError(f"{self.own_path}: the response cache cannot be opened ({e}); rerun with "
                             "--repair-cache, or pass --no-cache") from None

    def _readers(self) -> list[sqlite3.Connection]:
        for path in sorted(self.dir.glob("responses.rank*.sqlite")):
            if path != self.own_path and path not in self._others:
                try:
                    self._others[path] = connect(path, readonly=True)
                except sqlite3.OperationalError:
                    continue
        return [self._own, *self._others.values()]

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict] = {}
        for conn in self._readers():
            pending = [k for k in keys if k not in found]
            for i in range(0, len(pending), 500):
                chunk = pending[i:i + 500]
                marks = ",".join("?" * len(chunk))
                try:
                    rows = conn.execute(f"SELECT key, payload FROM responses WHERE key IN ({marks})", chunk)
                    for key, payload in rows:
                        try:
                            found[key] = json.loads(payload)
                        except ValueError:    # an unreadable answer is recomputed (and replaced), never trusted
                            continue
                except sqlite3.OperationalError:   # a shard another rank is still creating
                    break
                except sqlite3.DatabaseError as e:
                    raise self._failed(e) from None
        return found

    def put_many(self, items: Iterable[tuple[str, str, str, str, dict]]) -> None:
        """Commit (key, target, kind, fingerprint, payload) rows in one transaction."""
        now = time.time()
        rows = [(k, t, kind, fp, json.dumps(p, sort_keys=True), now) for k, t, kind, fp, p in items]
        try:
            with self._own:
                self._own.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)", rows)
        except sqlite3.DatabaseError as e:
            raise self._failed(e) from None

    def _failed(self, e: Exception) -> CacheError:
        self._failed_once = True
        for path in [self.own_path, *self._others]:
            forget_check(path)
        return CacheError(f"{self.dir}: the response cache failed during the run ({e}); every batch finished "
                          "before it is kept; rerun the same command (with --repair-cache if a shard is damaged)")

    def count(self) -> int:
        return sum(c.execute("SELECT COUNT(*) FROM responses").fetchone()[0] for c in self._readers())

    def close(self) -> None:
        for conn in [self._own, *self._others.values()]:
            conn.close()
        self._others.clear()
        if not self._failed_once:
            # passed the check when opened, and only SQLite has written it since
            record_checked(self.own_path)


class NullCache:
    """Used with --no-cache: remembers nothing."""

    def get_many(self, keys):
        return {}

    def put_many(self, items):
        pass

    def count(self) -> int:
        return 0

    def close(self) -> None:
        pass
