"""Content hashes of encoded images remembered across runs, so starting (or rerunning) a run over a large dataset
does not hash gigabytes of images again: identity (a file's path, size and mtime; a dataset file's row and column)
-> sha256, in one SQLite file under the harness cache (`$HARNESS_CACHE`, default ~/.cache/harness).

A changed file has another size or mtime, hence another identity, and is hashed again. Where the cache cannot be
written (a read-only home) hashes are simply computed every time.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterable

_lock = threading.Lock()
_connections: dict[Path, sqlite3.Connection | None] = {}


def _connection() -> sqlite3.Connection | None:
    from harness.filesystems import journal_mode
    from harness.store import cache_root

    path = cache_root() / "image-hashes.sqlite"
    with _lock:
        if path not in _connections:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
                conn.execute(f"PRAGMA journal_mode={journal_mode(path)}")     # every node writes it
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("CREATE TABLE IF NOT EXISTS hashes (identity TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
                conn.commit()
            except (OSError, sqlite3.Error):
                conn = None
            _connections[path] = conn
        return _connections[path]


def recall(identities: Iterable[str]) -> dict[str, str]:
    """The remembered hashes of these identities (those known)."""
    conn = _connection()
    ids = list(dict.fromkeys(identities))
    if conn is None or not ids:
        return {}
    found: dict[str, str] = {}
    with _lock:
        try:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                rows = conn.execute(f"SELECT identity, sha256 FROM hashes WHERE identity IN "
                                    f"({','.join('?' * len(chunk))})", chunk)
                found.update(rows)
        except sqlite3.Error:
            return {}
    return found


def remember(pairs: Iterable[tuple[str, str]]) -> None:
    conn = _connection()
    rows = list(pairs)
    if conn is None or not rows:
        return
    with _lock:
        try:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?)", rows)
        except sqlite3.Error:
            pass        # a locked or read-only cache only costs hashing again next time
