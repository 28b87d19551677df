"""`score --images` for GenEval: a folder in the layout evaluate_images.py reads, <IMAGE_FOLDER>/<index>/ with
metadata.jsonl (that prompt's line of evaluation_metadata.jsonl) and samples/<k>.png.

As in the official script, only sub-folders named with digits and files named <digits>.png count (the official
generator writes 0000.png..., our export 0000.png...; 00000.png reads as sample 0 too). Each folder's metadata must
be its prompt's line of the metadata the task was given, so images are never scored against another prompt.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from harness.errors import DataError

SAMPLE = re.compile(r"\d+\.png")


def read_folder(folder: Path, docs: list[dict], n_images: int | None) -> tuple[dict[str, Path], int]:
    """({ref "<doc_id>/<k>" of a generate request: image file}, images per prompt). Without `n_images` the count is
    the folder's largest sample number + 1; a prompt holding fewer images has failed samples, counted as a run
    counts them (incorrect, or left out under failure_mode exclude, as evaluate_images.py scores the files
    present)."""
    by_index = {d["index"]: d for d in docs}
    files: dict[str, Path] = {}
    seen: dict[int, str] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()):
        index = int(sub.name)
        if index in seen:
            raise DataError(f"--images {folder}: folders {seen[index]} and {sub.name} are both prompt {index}")
        seen[index] = sub.name
        doc = by_index.get(index)
        if doc is None:
            raise DataError(f"--images {folder}: folder {sub.name} has no prompt in the metadata ({len(docs)} "
                            "prompts); give the metadata the images were made from with --data")
        if _metadata(sub) != doc["metadata"]:
            raise DataError(f"--images {folder}: {sub.name}/metadata.jsonl is not prompt {index} of the metadata "
                            "given; score with the metadata the images were made from (--data)")
        samples = sub / "samples"
        for f in sorted(samples.iterdir()) if samples.is_dir() else []:
            if f.is_file() and SAMPLE.fullmatch(f.name):
                ref = f"{doc['doc_id']}/{int(f.stem)}"
                if ref in files:
                    raise DataError(f"--images {folder}: {sub.name}/samples holds sample {int(f.stem)} twice "
                                    f"({files[ref].name}, {f.name})")
                files[ref] = f
    top = max((int(ref.rsplit("/", 1)[1]) + 1 for ref in files), default=0)
    if n_images is not None and top > n_images:
        raise DataError(f"--images {folder}: prompts hold {top} images, more than n_images={n_images}; "
                        "omit n_images to score every image")
    return files, n_images if n_images is not None else max(top, 1)


def _metadata(sub: Path) -> dict:
    try:
        lines = (sub / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
        return json.loads(lines[0])
    except (OSError, IndexError, ValueError, UnicodeDecodeError):
        raise DataError(f"--images: {sub}/metadata.jsonl is missing or not a JSON line (GenEval's layout keeps "
                        "each prompt's metadata beside its samples)") from None
