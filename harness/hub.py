"""The local Hugging Face cache, read without any network: where it is, which commit a ref points to, and whether
this run may go online (HF_HUB_OFFLINE or HARNESS_OFFLINE switch it off)."""
from __future__ import annotations

import os
import re
from pathlib import Path

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HARNESS_OFFLINE"))


def hub_cache() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, then HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_dir(repo_id: str) -> Path:
    return hub_cache() / ("models--" + repo_id.replace("/", "--"))


def cached_commit(repo_id: str, revision: str | None = None) -> str | None:
    """Commit of `repo_id` at `revision` (a branch, tag or commit) in the local cache, or None."""
    if revision and COMMIT.match(revision):
        return revision
    ref = _repo_dir(repo_id) / "refs" / (revision or "main")
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def snapshot_dir(repo_id: str, commit: str | None) -> Path | None:
    """The cached snapshot folder of `repo_id` at `commit`, if present."""
    if not commit:
        return None
    snap = _repo_dir(repo_id) / "snapshots" / commit
    return snap if snap.is_dir() else None
