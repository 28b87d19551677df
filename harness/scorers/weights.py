"""Where a scorer's weights are and what identifies them, without loading them.

Weights are a Hugging Face hub id (read from the local HF cache; downloaded only when the hub is reachable and
HF_HUB_OFFLINE is not set) or a local folder/file. Identity, for fingerprints: a hub snapshot is its commit; a local
folder is a hash of its small JSON files plus the name, size and modification time of its weight files (hashing
gigabytes on every run would cost more than the scoring; a copied folder is merely recomputed, never confused).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from harness.errors import WeightsError
from harness.hub import (HUB_ID, cached_commit, hub_cache, offline, offline_reason,  # noqa: F401  (W.<name>)
                         online, snapshot_dir)

_SNAPSHOT_IN_PATH = re.compile(r"models--([^/]+)--([^/]+)/snapshots/([0-9a-f]{40})")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".tar", ".npz")


def is_local(weights: str) -> bool:
    """A path rather than a hub id: it exists, or it cannot be a hub id (absolute, ./, ~)."""
    return Path(weights).expanduser().exists() or not HUB_ID.match(weights)


def resolve_commit(repo_id: str, revision: str | None = None) -> tuple[str | None, bool]:
    """(commit, hub reachable) for the weights to load: the local cache first; when online, the hub's answer (one
    metadata request, so a first online run fingerprints the same snapshot a later offline run finds in the
    cache). An unreachable hub lets loading go straight to local files instead of retrying for a minute."""
    commit = cached_commit(repo_id, revision)
    if not online():
        return commit, False
    if commit:
        return commit, True
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return HfApi().model_info(repo_id, revision=revision, timeout=10).sha, True
    except HfHubHTTPError:  # the hub answered (unknown or gated repo): loading will say so properly
        return None, True
    except Exception:  # no answer at all (DNS, connection, timeout)
        return None, False


def local_identity(path: str | Path) -> str:
    """Cheap identity of a local weights folder or file (see the module docstring)."""
    p = Path(path).expanduser().resolve()
    m = _SNAPSHOT_IN_PATH.search(str(p))
    if m:
        return f"{m.group(1)}/{m.group(2)}@{m.group(3)}"
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        rel = f.name if p.is_file() else str(f.relative_to(p))
        st = f.stat()
        if f.suffix == ".json" and st.st_size < 1 << 20:
            h.update(f"{rel}:{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
        elif f.suffix in _WEIGHT_SUFFIXES:
            h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return "local:" + h.hexdigest()[:16]


def missing_weights(scorer: str, weights: str, cause: BaseException | str | None = None,
                    files: str | None = None) -> WeightsError:
    """The one-line error for weights that are not where they should be."""
    why = ""
    if cause is not None:
        text = str(cause).strip().splitlines()
        kind = type(cause).__name__ + ": " if isinstance(cause, BaseException) else ""
        why = f" ({kind}{text[0][:200] if text else ''})"
    if is_local(weights):
        return WeightsError(f"{scorer} weights not found at {weights}{why}; expected "
                            f"{files or 'a Hugging Face model folder (config.json, weights, processor files)'} there")
    return WeightsError(
        f"{scorer} weights {weights} are not in the local Hugging Face cache ({hub_cache()}) and {offline_reason()}"
        f"{why}; on a connected machine run `hf download {weights}` and copy the "
        f"Hugging Face cache here, or pass a local folder with --scorer-args '{{\"{scorer}\": {{\"weights\": "
        f"\"/path\"}}}}'")
