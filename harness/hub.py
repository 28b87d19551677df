"""The local Hugging Face cache, read without any network: where it is, which commit a ref points to, and whether
this run may go online.

A run is offline when HF_HUB_OFFLINE or HARNESS_OFFLINE is set, or when the hub does not answer a quick probe
(one HEAD request, at most PROBE_TIMEOUT_S, asked once per process). A failed probe switches the whole process to
offline mode, so transformers, datasets and huggingface_hub read their local caches instead of retrying an
unreachable hub for half a minute on every lookup."""
from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

COMMIT = re.compile(r"^[0-9a-f]{40}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")      # "org/name", as the hub spells repository ids
PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "true", "yes", "on")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# module attributes that libraries compute from those variables once, at import
OFFLINE_CONSTANTS = (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                     ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")))

_probed: dict[str, bool] = {}
_unreachable: str | None = None       # the endpoint whose failed probe switched this process offline


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HARNESS_OFFLINE"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT


def offline_reason() -> str:
    """Why this process does not fetch from the hub, as a clause for error messages."""
    if _unreachable:
        return f"the hub ({_unreachable}) did not answer"
    return "this run is offline (HF_HUB_OFFLINE is set)" if offline() else "they could not be downloaded"


def reachable(url: str) -> bool:
    """Whether the server at url's scheme, host and port answers an HTTP HEAD request (any status) within
    PROBE_TIMEOUT_S, through the proxy the environment names, if any. Asked once per server per process."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return True                         # a local file:// source needs no network
    root = f"{parts.scheme}://{parts.netloc}/"
    if root not in _probed:
        try:
            urllib.request.urlopen(urllib.request.Request(root, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
            _probed[root] = True
        except urllib.error.HTTPError:      # it answered, if only to refuse
            _probed[root] = True
        except (OSError, ValueError):       # DNS, refused, unroutable, timeout, TLS
            _probed[root] = False
    return _probed[root]


def online() -> bool:
    """May this process fetch from the hub? Call it before any hub lookup: offline, or when the hub does not
    answer the probe, it puts every Hugging Face library of this process in offline mode and returns False."""
    global _unreachable
    if not offline() and reachable(endpoint()):
        return True
    if not offline():
        _unreachable = endpoint()
    go_offline()
    return False


def go_offline() -> None:
    """Offline mode for this process and its children: the environment variables for libraries not yet imported,
    the module constants for those already imported (they read the variables once, at import)."""
    import sys

    for var in OFFLINE_VARIABLES:
        os.environ[var] = "1"
    for module, names in OFFLINE_CONSTANTS:
        if module in sys.modules:
            for name in names:
                setattr(sys.modules[module], name, True)


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


def dataset_commit(ds, repo_id: str) -> str | None:
    """The hub commit of the snapshot a loaded `datasets.Dataset` was read from, or None when nothing says.

    `datasets` keeps a hub dataset's Arrow files under <HF_DATASETS_CACHE>/<org>___<name>/<config>/<version>/<hash>/,
    where the hash of a hub dataset is the commit its files came from. Offline it reads the newest such folder
    whatever revision was asked for, so the folder the rows were actually read from is the evidence; the data files'
    hf://datasets/<repo>@<commit>/ addresses (recorded when it downloaded them) are the fallback.
    """
    for cache_file in getattr(ds, "cache_files", None) or []:
        folder = Path(cache_file.get("filename", "")).parent.name
        if COMMIT.match(folder):
            return folder
    checksums = getattr(getattr(ds, "info", None), "download_checksums", None) or {}
    addressed = re.compile(rf"hf://datasets/{re.escape(repo_id)}@([0-9a-f]{{40}})/")
    commits = {m.group(1) for url in checksums for m in [addressed.match(str(url))] if m}
    return commits.pop() if len(commits) == 1 else None
