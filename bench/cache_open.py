"""What opening a large response cache costs before a run starts (not a test): prints figures.

A results folder's cache grows with every model, checkpoint and task evaluated into it (the trainer evaluates every
checkpoint into one), and embedding scorers store a vector per image. Opening it checks each shard the process
reads before any run folder is touched. SQLite's quick_check reads every page, so it is done in full only when a
shard has no record of passing it or has changed since (harness/cache_shards.py); this measures both opens on one
shard, in the same run:

    read in full   = the open of a shard with no record, or one a killed run wrote to (the baseline)
    unchanged      = the open of the same shard after a clean close

The file is read from the page cache (it was just written), so a network filesystem or a cold disk makes the
first figure larger, never the second.

    python bench/cache_open.py            # the README figures: a 1 GB shard (about a minute on 2 CPU cores)
    python bench/cache_open.py --quick    # an 8 MB shard (CI runs it so it keeps working)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cache import ResponseCache  # noqa: E402
from harness.cache_shards import connect, forget_check  # noqa: E402

EMBEDDING = 768                  # a CLIP ViT-L/14 image embedding, stored as JSON floats


def fill(shard: Path, megabytes: int) -> int:
    """Answers of embedding size written through the cache's own schema until the file holds `megabytes`."""
    payload = json.dumps({"values": {"embedding": [0.1234567 * (i % 97) for i in range(EMBEDDING)]}}, sort_keys=True)
    conn = connect(shard, readonly=False)
    rows = 0
    try:
        while shard.stat().st_size < megabytes * 1_000_000:
            batch = [(hashlib.sha256(str(rows + i).encode()).hexdigest(), "scorer:clip", "embed", "clip:bench",
                      payload, 0.0) for i in range(1000)]
            with conn:
                conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?)", batch)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows += len(batch)
    finally:
        conn.close()
    return rows


def timed_open(folder: Path) -> float:
    t0 = time.perf_counter()
    cache = ResponseCache(folder)
    seconds = time.perf_counter() - t0
    cache.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megabytes", type=int, default=1000, help="the shard's size")
    ap.add_argument("--repeats", type=int, default=3, help="opens of each kind; the median is printed")
    ap.add_argument("--quick", action="store_true", help="the smallest configuration: an 8 MB shard")
    args = ap.parse_args()
    if args.quick:
        args.megabytes, args.repeats = 8, 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cache"
        folder.mkdir()
        shard = folder / "responses.rank0.sqlite"
        rows = fill(shard, args.megabytes)
        in_full, unchanged = [], []
        for _ in range(args.repeats):
            forget_check(shard)
            in_full.append(timed_open(folder))
            unchanged.append(timed_open(folder))
        size = shard.stat().st_size / 1e6
    full, kept = sorted(in_full)[len(in_full) // 2], sorted(unchanged)[len(unchanged) // 2]
    print(f"shard of {size:,.0f} MB: {rows:,} answers of a {EMBEDDING}-float embedding; median of {args.repeats}")
    print(f"open, read in full (no record, or a killed run wrote to it): {full:8.3f} s")
    print(f"open, unchanged since a clean close:                         {kept:8.3f} s   ({full / kept:,.0f}x faster)")


if __name__ == "__main__":
    main()
