"""Which SQLite journal a cache file gets: WAL on a local disk, a rollback journal on a network filesystem.

SQLite's WAL mode keeps its index in shared memory (the `-shm` file, memory-mapped), so every process using the
database must be on one host: "WAL does not work over a network filesystem" (sqlite.org/wal.html). A multi-node run
keeps its results, and so its cache shards, on the cluster's shared filesystem (NFS, Lustre, GPFS, ...), where the
ranks of one node read the shards that the ranks of another node are writing; the image-hash memo in the home
folder is written by every node. There SQLite's rollback journal (`DELETE`), which coordinates through file locks,
is used instead. HARNESS_SQLITE_JOURNAL=wal|delete overrides the choice (a FUSE filesystem not recognised here).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from harness.errors import HarnessError

JOURNAL_VARIABLE = "HARNESS_SQLITE_JOURNAL"
#: filesystem types (as /proc/mounts names them) that several hosts mount at once
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "glusterfs", "afs", "panfs",
    "wekafs", "pvfs2", "orangefs", "9p", "fuse.glusterfs", "fuse.ceph-fuse", "fuse.sshfs", "fuse.juicefs",
    "fuse.gcsfuse", "fuse.s3fs", "fuse.lustre", "fuse.weka",
})
MOUNTS = Path("/proc/mounts")
_OCTAL = re.compile(r"\\([0-7]{3})")


def journal_mode(path: Path) -> str:
    """"WAL" or "DELETE" for an SQLite file at `path` (which need not exist yet)."""
    return journal_override() or ("DELETE" if filesystem_type(path) in NETWORK_TYPES else "WAL")


def journal_override() -> str | None:
    """The journal HARNESS_SQLITE_JOURNAL asks for ("WAL" or "DELETE"), None when unset; a bad value is an error."""
    forced = os.environ.get(JOURNAL_VARIABLE, "").strip().lower()
    if not forced:
        return None
    if forced not in ("wal", "delete"):
        raise HarnessError(f"{JOURNAL_VARIABLE}={forced}: give wal (one host uses the cache) or delete (a "
                           "network filesystem several hosts use), or unset it to choose by filesystem")
    return forced.upper()


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (which need not exist yet), from /proc/mounts; None where there
    is no /proc/mounts (not Linux)."""
    if mounts is None:
        try:
            mounts = MOUNTS.read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts writes a space in a mount point as \040 (and tab, newline, backslash alike)
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):       # the innermost mount; a later one hides an earlier one
            best, kind = point, fields[2]
    return kind
