"""The results store: one folder per run, one sub-folder per task, written atomically as each task finishes.

    <output>/<model-slug>/<run-id>/manifest.json
    <output>/<model-slug>/<run-id>/<task>/results.json
    <output>/<model-slug>/<run-id>/<task>/samples.jsonl
    <output>/artifacts/<aa>/<sha256>.png          generated images, shared and deduplicated
    <output>/cache/responses.rank<r>.sqlite       the response cache

The files' contents are defined in harness/results.py (the schema); this module writes bytes safely.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from harness.errors import HarnessError
from harness.types import reusable_encode

PACKAGES = ("torch", "torchvision", "transformers", "tokenizers", "peft", "accelerate", "datasets", "diffusers",
            "open_clip_torch", "timm", "dreamsim", "safetensors", "numpy", "pillow", "pandas")


def cache_root() -> Path:
    """The harness's own cache (world datasets, downloads, remembered hashes): $HARNESS_CACHE or ~/.cache/harness."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Atomically (temp file + rename). fsync=False keeps the crash safety a killed process needs (the page cache
    outlives it) without waiting for the disk: the response cache promises no more than that either.

    A file that already holds exactly these bytes is left alone: a finished rerun rewrites (and waits on the disk
    for) only what changed."""
    if _holds(path, data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _holds(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def slug(text: str) -> str:
    """A folder name made from free text (a model id, a task name from an imported file): never '.' or '..'."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "__", text.strip().strip("/"))[-80:]
    return "model" if s.strip(".") == "" else s


def ensure_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise HarnessError(f"--output {directory}: cannot write there ({e.strerror}); "
                           "choose a writable directory") from None


def git_sha() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(name: str) -> str | None:
    """A distribution's version, from its dist-info folder name when it has the usual one (parsing METADATA, as
    metadata.version does, costs 5 ms a package: a tenth of a second on every run)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    folder = getattr(dist, "_path", None)
    m = re.match(r"^[^-]+-([^-]+)\.dist-info$", getattr(folder, "name", ""))
    return m.group(1) if m else dist.version


def environment() -> dict:
    """Package versions, git SHA, Python and platform (read once per process)."""
    return json.loads(json.dumps(_environment()))


@functools.lru_cache(maxsize=1)
def _environment() -> dict:
    versions = {name: v for name in PACKAGES if (v := _version(name)) is not None}
    from harness import __version__
    return {"harness": __version__, "git_sha": git_sha(), "python": sys.version.split()[0],
            "platform": platform.platform(), "packages": versions}


class RunStore:
    """Paths and writers of one run folder."""

    def __init__(self, output: Path, model_slug: str, run_id: str):
        from harness.options import check_folder_name

        # both become folders under --output: a name like '../../x' must not write elsewhere
        check_folder_name("model folder", model_slug)
        check_folder_name("--run-name", run_id)
        self.output = Path(output)
        self.dir = self.output / model_slug / run_id
        self.run_id = run_id

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def task_dir(self, task: str) -> Path:
        from harness.options import check_folder_name

        return self.dir / check_folder_name("task", task)

    def write_manifest(self, manifest) -> None:
        """A harness.results.Manifest."""
        write_json(self.manifest_path, manifest.to_dict())

    def write_task(self, task: str, results, samples: list[dict], extras: dict | None = None) -> None:
        """A task's files: extras, samples.jsonl, then results.json (a harness.results.TaskResult)."""
        lines = "".join(_SAMPLE_LINE(s) + "\n" for s in samples)
        # samples and extras first: results.json appearing is the sign that a task's files are complete
        from harness.options import check_folder_name

        for name, content in (extras or {}).items():
            check_folder_name(f"{task}: extra file", name)      # written beside results.json, never elsewhere
            if isinstance(content, bytes):
                write_bytes(self.task_dir(task) / name, content)
            else:
                write_text(self.task_dir(task) / name, content)
        write_text(self.task_dir(task) / "samples.jsonl", lines)
        write_json(self.task_dir(task) / "results.json", results.to_dict())


_SAMPLE_LINE = reusable_encode(json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str))


def read_samples(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise HarnessError(f"{path}: line {n} is not valid JSON") from None
    return out


def now() -> float:
    return round(time.time(), 3)
