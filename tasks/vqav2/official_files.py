"""The official VQA files: the pair GT-Vision-Lab's vqaEval.py reads.

* questions: {"data_subtype": "val2014", "questions": [{"image_id", "question", "question_id"}], ...}
  (v2_OpenEnded_mscoco_val2014_questions.json; AdVQA's v1_OpenEnded_mscoco_val2017_advqa_questions.json);
* annotations: {"annotations": [{"question_id", "image_id", "answers": [{"answer", "answer_confidence",
  "answer_id"}], "multiple_choice_answer", "answer_type", "question_type"}], ...}
  (v2_mscoco_val2014_annotations.json; v1_mscoco_val2017_advqa_annotations.json). Test splits have none.

`--data` names the questions file or the folder holding both. The files carry no pixels: images are COCO files
named after image_id (COCO_val2014_000000000042.jpg in the 2014/2015 releases, 000000000042.jpg in 2017's), read
from the task option image_root; `harness score` needs none.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.errors import DataError
from harness.types import Image


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return None          # not one of ours: the generic table loader reports what is wrong with it


def _find(path: Path, need_answers: bool) -> tuple[tuple[Path, dict] | None, tuple[Path, dict] | None]:
    """(questions file, annotations file) at `path` (the questions file, or a folder), each None when absent."""
    found: dict[str, list[tuple[Path, dict]]] = {"questions": [], "annotations": []}
    if path.is_file():
        data = _load(path) if path.suffix.lower() == ".json" else None
        if not (isinstance(data, dict) and isinstance(data.get("questions"), list)):
            return None, None
        found["questions"].append((path, data))
        folder = path.parent
    elif path.is_dir():
        folder = path
    else:
        return None, None
    for f in sorted(folder.glob("*.json")):
        if f == path or (path.is_file() and not need_answers):
            continue
        data = _load(f)
        for kind in ("questions", "annotations"):
            if isinstance(data, dict) and isinstance(data.get(kind), list) and not (path.is_file() and
                                                                                    kind == "questions"):
                found[kind].append((f, data))
    for kind, files in found.items():
        if len(files) > 1:
            raise DataError(f"--data {path}: several official {kind} files ({', '.join(f.name for f, _ in files)}); "
                            "give the questions file itself, with one annotations file beside it")
    return (found["questions"] or [None])[0], (found["annotations"] or [None])[0]


def read_official(path: Path, need_answers: bool, image_root: str | None, score_only: bool) -> list[dict] | None:
    """Rows in the lmms-lab/VQAv2 schema from the official files at `path`, or None when it holds none."""
    questions, annotations = _find(path, need_answers)
    if questions is None:
        return None
    qpath, qdata = questions
    by_qid: dict = {}
    if need_answers:
        if annotations is None:
            raise DataError(f"--data {path}: {qpath.name} has no annotations file beside it; put the official "
                            "annotations JSON (with the 'annotations' list) in the same folder")
        apath, adata = annotations
        by_qid = {a.get("question_id"): a for a in adata["annotations"] if isinstance(a, dict)}
    subtype = str(qdata.get("data_subtype") or "")
    root = Path(image_root).expanduser() if image_root else None
    rows = []
    for n, q in enumerate(qdata["questions"], 1):
        if not isinstance(q, dict) or "question_id" not in q or "image_id" not in q:
            raise DataError(f"{qpath}: question {n} needs 'question_id' and 'image_id'")
        row = {"question_id": q["question_id"], "question": q.get("question"), "image_id": q["image_id"],
               "image": _image(root, subtype, q["image_id"], qpath, n, score_only)}
        if need_answers:
            ann = by_qid.get(q["question_id"])
            if ann is None:
                raise DataError(f"{apath}: no annotation for question_id {q['question_id']} of {qpath.name}")
            row.update({k: ann.get(k) for k in ("answers", "multiple_choice_answer", "answer_type",
                                                "question_type")})
        rows.append(row)
    return rows


def _image(root: Path | None, subtype: str, image_id, qpath: Path, n: int, score_only: bool) -> Image | None:
    """The COCO file of image_id under image_root (or its <data_subtype>/ folder); None when only scoring."""
    try:
        number = int(image_id)
    except (TypeError, ValueError):
        raise DataError(f"{qpath}: question {n}: image_id {image_id!r} is not an integer") from None
    names = [f"COCO_{subtype}_{number:012d}.jpg", f"{number:012d}.jpg"]
    for folder in ([root, root / subtype] if root is not None else []):
        for name in names:
            if (folder / name).is_file():
                return Image(path=folder / name)
    if score_only:
        return None
    where = f"in {root}" if root is not None else "(no image_root given)"
    raise DataError(f"{qpath}: question {n}: image {names[0]} or {names[1]} not found {where}; pass the COCO "
                    "image folder with --task-args '{\"TASK\": {\"image_root\": \"DIR\"}}', or score stored "
                    "predictions with `harness score`")
