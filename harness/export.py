"""Write a finished run's generated images in a benchmark's own folder layout, so the official tools can score them.

The layout is the task's (`Task.export_images`, e.g. GenEval's <00000>/metadata.jsonl + samples/0000.png); the
engine supplies the images from the run's samples.jsonl (image hashes) and the artifact store (<output>/artifacts),
copied byte for byte, and keeps every written path inside the export folder whatever the stored samples say.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from harness import registry
from harness.artifacts import ArtifactStore
from harness.errors import HarnessError
from harness.store import read_samples


class ExportWriter:
    """What a task's export_images writes through: images by hash and small text files, at relative paths."""

    def __init__(self, out: Path, store: ArtifactStore):
        self.out, self.store = out, store
        self.root = out.resolve()
        self.written = self.missing = 0

    def _inside(self, relpath: str) -> Path:
        dest = (self.out / relpath).resolve()
        if not dest.is_relative_to(self.root) or dest == self.root:
            raise HarnessError(f"export: {relpath!r} (from the run's samples.jsonl) would be written outside "
                               f"{self.out}; the samples file has been altered")
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def image(self, sha: str | None, relpath: str) -> None:
        """Copy the generated image `sha` to relpath; None (a failed generation) is counted as missing."""
        if sha is None:
            self.missing += 1
            return
        if not self.store.exists(sha):
            raise HarnessError(f"image {sha[:12]}... is not in the artifact store {self.store.root}; was the "
                               "results folder moved without its artifacts/?")
        shutil.copyfile(self.store.path(sha), self._inside(relpath))
        self.written += 1

    def text(self, relpath: str, content: str) -> None:
        self._inside(relpath).write_text(content, encoding="utf-8")


def export(run_dir: str | Path, task: str, out: str | Path | None = None) -> dict:
    """Export `task` of the run at `run_dir` into `out` (default <run_dir>/<task>/export); returns a summary."""
    run_dir = Path(run_dir)
    cls = registry.TASKS.load(task)
    if cls.export_layout is None:
        with_layout = [n for n in registry.TASKS.names() if registry.TASKS.load(n).export_layout]
        raise HarnessError(f"task {task!r} has no image layout to export (tasks with one: {', '.join(with_layout)})")
    samples_path = run_dir / task / "samples.jsonl"
    if not samples_path.is_file():
        raise HarnessError(f"{run_dir}: no finished {task!r} task here ({samples_path} missing); give a run folder "
                           "like results/<model>/<run-id> whose run included the task")
    out = Path(out) if out is not None else run_dir / task / "export"
    out.mkdir(parents=True, exist_ok=True)
    lines = read_samples(samples_path)
    writer = ExportWriter(out, ArtifactStore(run_dir.parent.parent / "artifacts"))
    cls.export_images(lines, writer)
    return {"task": task, "layout": cls.export_layout, "out": str(out), "documents": len(lines),
            "written": writer.written, "missing": writer.missing}


def first_image(entry: dict) -> str | None:
    """The image hash a stored generate request answered with (None when it failed)."""
    images = (entry.get("response") or {}).get("images") or []
    return images[0] if images else None
