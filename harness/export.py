"""Write a finished run's generated images in a benchmark's own folder layout, so the official tools can score them.

* geneval: <out>/<00000>/metadata.jsonl (that prompt's metadata line) and <out>/<00000>/samples/0000.png ... in
  sample order: the layout GenEval's evaluate_images.py reads. A failed sample has no file (the official script
  then scores fewer images; the count is reported).
* wise: <out>/{prompt_id}.png, the layout of WISE's gpt_eval.py.
* unified_bench / unified_bench_uae: <out>/{reference stem}.png, paired by stem as UAE's Score_i2i.py does.

Images come from the run's samples.jsonl (image hashes) and the artifact store (<output>/artifacts); the PNG files
are copied byte for byte. The task's name in the run selects the layout (a derived task name such as
"geneval_long" uses the layout of the name it starts with).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.artifacts import ArtifactStore
from harness.errors import HarnessError
from harness.store import read_samples

LAYOUTS = ("geneval", "wise", "unified_bench")


def layout_of(task: str) -> str:
    for name in LAYOUTS:
        if task == name or task.startswith(name + "_"):
            return name
    raise HarnessError(f"export knows the layouts of {', '.join(LAYOUTS)}; task {task!r} has none")


def export(run_dir: str | Path, task: str, out: str | Path | None = None) -> dict:
    """Export `task` of the run at `run_dir` into `out` (default <run_dir>/<task>/export); returns a summary."""
    run_dir = Path(run_dir)
    kind = layout_of(task)
    samples_path = run_dir / task / "samples.jsonl"
    if not samples_path.is_file():
        raise HarnessError(f"{run_dir}: no finished {task!r} task here ({samples_path} missing); give a run folder "
                           "like results/<model>/<run-id> whose run included the task")
    store = ArtifactStore(run_dir.parent.parent / "artifacts")
    out = Path(out) if out is not None else run_dir / task / "export"
    out.mkdir(parents=True, exist_ok=True)
    lines = read_samples(samples_path)
    counts = {"written": 0, "missing": 0}
    for line in lines:
        if kind == "geneval":
            _geneval_prompt(line, out, store, counts)
        else:
            stage = "generate" if kind == "wise" else "regenerate"
            record = line.get("record") or {}
            name = str(record.get("prompt_id", line["doc_id"])) if kind == "wise" else Path(
                record.get("name", line["doc_id"])).stem
            entries = (line.get("requests") or {}).get(stage) or []
            _copy(_image_of(entries[0]) if entries else None, out / f"{name}.png", store, counts)
    return {"task": task, "layout": kind, "out": str(out), "documents": len(lines), **counts}


def _geneval_prompt(line: dict, out: Path, store: ArtifactStore, counts: dict) -> None:
    record = line.get("record") or {}
    if "metadata" not in record or "index" not in record:
        raise HarnessError(f"samples.jsonl: document {line.get('doc_id')!r} has no GenEval metadata in its record")
    folder = out / f"{int(record['index']):05d}"
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text(json.dumps(record["metadata"]) + "\n", encoding="utf-8")
    for entry in (line.get("requests") or {}).get("generate") or []:
        k = _sample_of(entry)
        _copy(_image_of(entry), folder / "samples" / f"{k:04d}.png", store, counts)


def _sample_of(entry: dict) -> int:
    """The sample index, from the request's ref "<doc>/<k>" (samples.jsonl keeps requests, not sample numbers)."""
    ref = str(entry.get("ref", ""))
    tail = ref.rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise HarnessError(f"samples.jsonl: a generate request has no sample number in its ref {ref!r}")
    return int(tail)


def _image_of(entry: dict) -> str | None:
    images = (entry.get("response") or {}).get("images") or []
    return images[0] if images else None


def _copy(sha: str | None, dest: Path, store: ArtifactStore, counts: dict) -> None:
    if sha is None:
        counts["missing"] += 1          # a failed generation: nothing to score, and the summary says so
        return
    if not store.exists(sha):
        raise HarnessError(f"image {sha[:12]}... is not in the artifact store {store.root}; was the results folder "
                           "moved without its artifacts/?")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store.path(sha), dest)
    counts["written"] += 1
