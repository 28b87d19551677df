"""The executor's write-behind and prefetch: a batch counts as done only once its images are on disk and its rows
committed, a failing store stops the run without losing the batches stored before it, and never leaves a cache
row whose image is missing."""
import json
import sqlite3
import threading
import time

import pytest

from harness.api import RunConfig, evaluate
from harness.artifacts import ArtifactStore
from harness.pipeline import WriteBehind, hash_images
from harness.types import Image


def _cached_images(output):
    rows = []
    for shard in (output / "cache").glob("responses.rank*.sqlite"):
        with sqlite3.connect(shard) as conn:
            rows += [json.loads(p) for (p,) in conn.execute("SELECT payload FROM responses")]
    return [sha for payload in rows for sha in payload.get("images", [])]


def test_a_failing_store_keeps_earlier_batches_and_never_commits_a_row_without_its_image(tmp_path, doubles,
                                                                                        monkeypatch):
    calls = {"n": 0}
    real_put = ArtifactStore.put

    def failing_put(self, image):
        calls["n"] += 1
        if calls["n"] == 9:                # inside the fifth batch of two images
            raise OSError("disk full (test)")
        return real_put(self, image)

    monkeypatch.setattr(ArtifactStore, "put", failing_put)
    config = RunConfig(output=tmp_path, batch_size=2, progress=False)
    with pytest.raises(OSError, match="disk full"):
        evaluate("double-model", ["double_roundtrip"], config)
    stored = _cached_images(tmp_path)
    assert len(stored) >= 8                                   # the batches before the failure were committed
    assert all(ArtifactStore(tmp_path / "artifacts").exists(sha) for sha in stored)
    monkeypatch.setattr(ArtifactStore, "put", real_put)
    res = evaluate("double-model", ["double_roundtrip"], config)
    counts = res.results["double_roundtrip"].counts
    assert counts.failed == 0 and counts.cached >= 30 + len(stored)     # describe answers + stored images reused
    assert all(ArtifactStore(tmp_path / "artifacts").exists(sha) for sha in _cached_images(tmp_path))


def test_write_behind_keeps_order_and_bounds_batches_in_flight():
    writes = WriteBehind(depth=2, encoders=1)
    started, finished, done = [], [], []
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def store(k):
        with lock:
            started.append(k)
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.01)
        with lock:
            finished.append(k)
            in_flight["now"] -= 1

    submitted = []
    for k in range(6):
        writes.submit(lambda k=k: store(k), lambda k=k: done.append(k))
        submitted.append(k)
        assert len(submitted) - len(done) <= 3        # depth 2 waiting + the one just queued
    writes.drain()
    writes.close()
    assert started == finished == done == list(range(6)) and in_flight["max"] == 1


def test_parallel_hashing_gives_the_same_hashes(tmp_path):
    from PIL import Image as PILImage

    paths = []
    for i in range(20):
        PILImage.new("RGB", (16, 16), (i, 2 * i, 3 * i)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    serial = [Image(path=p).sha256 for p in paths]
    images = [Image(path=p) for p in paths]
    hash_images(images)
    assert all(im.hashed for im in images) and [im.sha256 for im in images] == serial


def test_hashes_are_remembered_across_runs_and_forgotten_when_the_file_changes(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from harness.data import load_rows, write_parquet

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    table = tmp_path / "rows.parquet"
    rows = [{"id": i, "image": Image(pil=PILImage.new("RGB", (8, 8), (i, 0, 0)))} for i in range(12)]
    write_parquet(table, rows, ["image"])
    first = load_rows(table, image_columns=["image"])
    hash_images(r["image"] for r in first)
    shas = [r["image"].sha256 for r in first]

    again = load_rows(table, image_columns=["image"])
    monkeypatch.setattr(Image, "_source", lambda self: pytest.fail("read bytes that were hashed before"))
    hash_images(r["image"] for r in again)
    assert [r["image"].sha256 for r in again] == shas
    monkeypatch.undo()

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    write_parquet(table, [{"id": i, "image": Image(pil=PILImage.new("RGB", (8, 8), (0, i, 0)))} for i in range(12)],
                  ["image"])
    changed = load_rows(table, image_columns=["image"])
    hash_images(r["image"] for r in changed)
    assert [r["image"].sha256 for r in changed] != shas                      # new content, new hashes
    assert changed[3]["image"].sha256 == Image(loader=changed[3]["image"]._source).sha256


def test_hashing_and_encoding_threads_follow_the_cpus_this_process_may_use(monkeypatch):
    """On a shared node a task may use a few of the node's cores (Slurm's --cpus-per-task, a container's cpuset):
    its worker threads must be sized to those, not to the node's count."""
    import os

    import harness.hashmemo
    import harness.pipeline
    from concurrent.futures import ThreadPoolExecutor
    from PIL import Image as PILImage

    sizes = []

    class Recording(ThreadPoolExecutor):      # test double: a thread pool that records its size
        def __init__(self, max_workers=None, *args, **kw):
            sizes.append(max_workers)
            super().__init__(max_workers, *args, **kw)

    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5, 6}, raising=False)
    monkeypatch.setattr(harness.pipeline, "ThreadPoolExecutor", Recording)
    monkeypatch.setattr(harness.hashmemo, "recall", lambda identities: {})
    monkeypatch.setattr(harness.hashmemo, "remember", lambda pairs: None)
    hash_images([Image(pil=PILImage.new("RGB", (4, 4), (i, 0, 0))) for i in range(8)])
    WriteBehind().close()
    assert sizes == [3, 1, 3]          # hashing pool; the store thread and the encoders of WriteBehind
