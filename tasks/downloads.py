"""Benchmark files that live outside the Hugging Face hub (GitHub files, release archives): fetched once into the
harness cache when online, read from there afterwards, and pinned by sha256 where the content is known.

Offline (HF_HUB_OFFLINE or HARNESS_OFFLINE set, or the network unreachable) and not cached, the error is one line
naming the file to fetch, where to put it, and the `--data PATH` alternative.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from harness.store import cache_root
from harness.hub import offline, reachable
from harness.store import sha256_file
from harness.errors import DataError

TIMEOUT_S = 30


def _download(url: str, dest: Path) -> None:
    """url -> dest through a temporary file in the same folder (a partial download never looks finished)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_file(url: str, relpath: str, *, sha256: str | None = None, what: str, alternative: str) -> Path:
    """The file at cache_root()/relpath, downloaded from `url` first when missing and the network allowed.

    `what` names the file in messages ("GenEval's evaluation_metadata.jsonl (djghosh13/geneval@af4902f)");
    `alternative` says what else the user can do ("or pass --data PATH to a copy").
    """
    dest = cache_root() / relpath
    if not dest.is_file():
        if offline():
            raise DataError(f"{what} is not cached and the network is off: fetch {url} to {dest}, {alternative}")
        if not reachable(url):
            raise DataError(f"{what} is not cached and {urlsplit(url).hostname} did not answer: fetch {url} to "
                            f"{dest}, {alternative}")
        try:
            _download(url, dest)
        except (OSError, ValueError) as e:   # URLError and HTTPError are OSErrors
            raise DataError(f"{what} could not be fetched ({type(e).__name__}): fetch {url} to {dest}, "
                            f"{alternative}") from None
    if sha256 is not None:
        got = sha256_file(dest)
        if got != sha256:
            raise DataError(f"{dest}: sha256 {got[:12]}... differs from the pinned {sha256[:12]}... of {what}; "
                            f"delete it to fetch again, {alternative}")
    return dest


def cached_zip_folder(url: str, reldir: str, *, marker: str, what: str, alternative: str) -> Path:
    """A release archive extracted to cache_root()/reldir (downloaded and extracted when missing).

    `marker` is a file name the archive must contain (e.g. "0.jpg"); the folder holding it is returned.
    """
    root = cache_root() / reldir
    found = _find(root, marker)
    if found is not None:
        return found
    archive = cached_file(url, f"{reldir}.zip", what=what, alternative=alternative)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():    # refuse paths that would escape the target folder
                if name.startswith("/") or ".." in Path(name).parts:
                    raise DataError(f"{archive}: unsafe path {name!r} in the archive")
            zf.extractall(tmp)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except zipfile.BadZipFile:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{archive}: not a zip archive; delete it to fetch again, {alternative}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    found = _find(root, marker)
    if found is None:
        raise DataError(f"{what}: the archive {archive} holds no {marker}; {alternative}")
    return found


def _find(root: Path, marker: str) -> Path | None:
    if not root.is_dir():
        return None
    if (root / marker).is_file():
        return root
    hits = sorted(p.parent for p in root.rglob(marker) if "__MACOSX" not in p.parts)
    return hits[0] if hits else None
