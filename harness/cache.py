"""Write-through response cache: SQLite in WAL mode, one shard file per process rank.

Each process writes only its own shard (no cross-process write locks, safe on shared filesystems) and reads every
shard, so a run resumed with a different number of processes still finds all finished work. One transaction per
finished batch: a crash or `kill -9` loses at most the batch in flight.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable

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


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    else:
        # commits come from the executor's write-behind thread, lookups from the main thread, never at once
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against process crashes (the case we promise); only power loss may cost
        # the last transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)
        conn.commit()
    return conn


class ResponseCache:
    """Key -> payload store shared by every runner of a run."""

    def __init__(self, directory: str | Path, rank: int = 0):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.own_path = self.dir / f"responses.rank{rank}.sqlite"
        self._own = _connect(self.own_path, readonly=False)
        self._others: dict[Path, sqlite3.Connection] = {}

    def _readers(self) -> list[sqlite3.Connection]:
        for path in sorted(self.dir.glob("responses.rank*.sqlite")):
            if path != self.own_path and path not in self._others:
                try:
                    self._others[path] = _connect(path, readonly=True)
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
                        found[key] = json.loads(payload)
                except sqlite3.OperationalError:   # a shard another rank is still creating
                    break
        return found

    def put_many(self, items: Iterable[tuple[str, str, str, str, dict]]) -> None:
        """Commit (key, target, kind, fingerprint, payload) rows in one transaction."""
        now = time.time()
        rows = [(k, t, kind, fp, json.dumps(p, sort_keys=True), now) for k, t, kind, fp, p in items]
        with self._own:
            self._own.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)", rows)

    def count(self) -> int:
        return sum(c.execute("SELECT COUNT(*) FROM responses").fetchone()[0] for c in self._readers())

    def close(self) -> None:
        for conn in [self._own, *self._others.values()]:
            conn.close()
        self._others.clear()


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
