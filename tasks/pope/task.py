"""POPE (`pope`): object-hallucination yes/no questions, metrics per split and the mean F1 over splits."""
from __future__ import annotations

import json
from pathlib import Path

from harness.data import TABLE_SUFFIXES, content_sha256, image_cell, load_rows
from harness.errors import DataError
from harness.metrics import bootstrap, mean
from harness.task import DatasetInfo, MODEL, Stage, Task, understand
from harness.types import Image
from tasks.common import GREEDY, as_text, bad_row, is_local_path, load_source, metric, text_of

from . import lmms as lmms_pope
from . import scoring

SUFFIX = "Answer the question using a single word or phrase."
PROMPT_ID = "pope-short-answer-newline-v1"
MAX_NEW_TOKENS = 128
SPLITS = ("adversarial", "popular", "random")
# lmms-lab/POPE main as of its last commit (adds the "Full" config; the default config is unchanged since)
HUB = {"repo": "lmms-lab/POPE", "config": None, "split": "test",
       "revision": "4db1276663dfa5eb8ad16a52d24c31a09e470896"}


def _category_from_name(stem: str) -> str:
    return next((s for s in SPLITS if s in stem), stem)


def _json_lines(path: Path) -> list[dict] | None:
    """Rows of a JSON-lines file (the official files are JSON lines named .json), or None if it is not one."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return None
            if not isinstance(row, dict):
                return None
            rows.append(row)
    return rows


class POPE(Task):
    """POPE on COCO: adversarial, popular and random splits (3,000 questions each, half "yes").

    Data: default hub copy lmms-lab/POPE split `test` (all 9,000, with a `category` column; pinned to commit
    4db1276); `--data hub:lmms-lab-encoder/POPE` reads lmms-eval's current copy. `--data PATH` (a file or a
    folder of files) takes that schema, or the official JSON-lines files coco_pope_{random,popular,adversarial}.json
    (question_id, image, text, label; the split comes from the file name), whose image file names are looked up
    in the folder given by the option `image_root`, next to the file, or in val2014/ beside it or one level up
    (LLaVA's layout); `harness score` needs no images, so the official files alone are enough there.
    Doc id: str(question_id); the official files number each split 1..3000, so when ids repeat across splits every
    doc id becomes "{category}:{question_id}". Records carry the category.
    Prompt (both profiles): "{question.strip()}\\nAnswer the question using a single word or phrase.", greedy,
    max_new_tokens 128.
    Profiles (scoring.py has the rules):
    * official - AoiDragon/POPE evaluate.py: first sentence, "," removed, split on " "; a token "No", "not" or
      "no" means no, anything else yes (case-sensitive: "NO" and "Nope." are yes - reproduced quirks).
    * lmms - lmms-eval: exact match of output.lower().strip(); other strings drop out of precision and recall.
      lmms-eval pools the splits and reports the GROUND-TRUTH yes ratio (a bug): here yes_ratio is predicted,
      the pooled row is in details.pooled (with lmms_reported_yes_ratio).
    Metrics per split: accuracy, precision, recall, f1, yes_ratio (predicted); headline f1 = mean F1 over the
    splits present (LLaVA-1.5 / InternVL "Avg F1"), bootstrap stderr. A metric the official script would divide by
    zero for is None. A failed request counts as the wrong answer (the opposite of the label) and is counted.
    """

    lmms = lmms_pope.EQUIVALENT
    name = "pope"
    model_kinds = ("understand",)
    version = "1"
    description = "POPE: mean F1 over adversarial/popular/random (lmms-lab/POPE, split test)"
    profiles = ("official", "lmms")
    headline = "f1"
    options_help = {"image_root": "folder holding the COCO images named in official POPE files"}
    option_types = {"image_root": "str"}
    hub = HUB
    world = "pope"

    # --- data ---------------------------------------------------------------------------------------------
    def load(self):
        if is_local_path(self.data):
            rows = self._local_rows(Path(self.data).expanduser())
            info = DatasetInfo("path", str(self.data), sha256=content_sha256(rows))
        else:
            raw, info = load_source(self, self.hub, self.world, image_columns=("image",),
                                    required=("question_id", "question", "answer")
                                    + (() if self.score_only else ("image",)))
            rows = [self._hf_row(r, n, info) for n, r in enumerate(raw, 1)]
        ids = [str(r["question_id"]) for r in rows]
        if len(set(ids)) < len(ids):
            ids = [f"{r['category']}:{r['question_id']}" for r in rows]
            info.extra["doc_id"] = "{category}:{question_id}"
        seen: dict[str, int] = {}
        for n, i in enumerate(ids, 1):
            if i in seen:
                raise DataError(f"{info.name}: rows {seen[i]} and {n} are the same question {i!r}")
            seen[i] = n
        return [{"doc_id": i, **r} for i, r in zip(ids, rows)], info

    def _hf_row(self, row, n: int, where, category: str | None = None) -> dict:
        label = str(row["answer"]).strip().lower()
        if label not in ("yes", "no"):
            raise bad_row(where, n, "answer", f"expected yes or no, got {row['answer']!r}")
        if row.get("image") is None and not self.score_only:
            raise bad_row(where, n, "image", "no image (rows without images can only be scored: `harness score`)")
        qid = row["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, (int, str)) or not str(qid).strip():
            raise bad_row(where, n, "question_id", f"expected an integer or a text id, got {qid!r}")
        return {"question_id": qid,
                "question": as_text(row["question"], where, n, "question"), "label": label,
                "category": str(row.get("category") or category or "all"), "image": row.get("image")}

    def _local_rows(self, path: Path) -> list[dict]:
        if not path.exists():
            raise DataError(f"--data {path}: no such file or folder")
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()):
            return [self._hf_row(r, n, str(path)) for n, r in
                    enumerate(load_rows(path, image_columns=("image",)), 1)]
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in TABLE_SUFFIXES)
        if not files:
            raise DataError(f"--data {path}: folder holds no {'/'.join(TABLE_SUFFIXES)} files")
        rows = []
        for f in files:
            raw = _json_lines(f) if f.suffix == ".json" else None
            if raw is None:
                raw = load_rows(f)
            rows.extend(self._file_row(r, n, f) for n, r in enumerate(raw, 1))
        return rows

    def _file_row(self, row: dict, n: int, f: Path) -> dict:
        if "text" in row and "label" in row:       # the official JSON-lines schema
            name = row.get("image")
            if not isinstance(name, str) or not name:
                raise bad_row(str(f), n, "image", "expected an image file name")
            category = str(row.get("category") or _category_from_name(f.stem))
            path = self._find_image(name, f, n)
            fixed = {"question_id": row.get("question_id"), "question": row["text"], "answer": row["label"],
                     "category": category, "image": Image(path=path) if path is not None else None}
            if fixed["question_id"] is None:
                raise bad_row(str(f), n, "question_id", "missing")
            return self._hf_row(fixed, n, str(f))
        if "question" in row and "answer" in row:  # the lmms-lab/POPE schema
            row = dict(row)
            for col in ("question_id",) + (() if self.score_only else ("image",)):
                if col not in row:
                    raise bad_row(str(f), n, col, "missing")
            if row.get("image") is not None and not isinstance(row["image"], Image):
                row["image"] = image_cell(row["image"], f.parent, f"{f}: row {n}, column 'image'")
            return self._hf_row(row, n, str(f), _category_from_name(f.stem))
        raise DataError(f"{f}: row {n} is neither the official POPE schema (question_id, image, text, label) nor "
                        f"the lmms-lab/POPE schema (question_id, question, answer, category, image); "
                        f"columns: {', '.join(sorted(row))}")

    def _find_image(self, name: str, f: Path, n: int) -> Path | None:
        """The COCO file the row names (None when only scoring: the answers need no pixels)."""
        roots = ([Path(self.options["image_root"]).expanduser()] if self.options.get("image_root") else []) + [
            f.parent, f.parent / "val2014", f.parent.parent / "val2014"]
        if Path(name).name != name:
            raise bad_row(str(f), n, "image", f"expected a file name, got the path {name!r}")
        for root in roots:
            if (root / name).exists():
                return root / name
        if self.score_only:
            return None
        raise bad_row(str(f), n, "image", f"image file {name} not found in {', '.join(map(str, roots))}")

    # --- requests and scoring -----------------------------------------------------------------------------
    def stages(self):
        return [Stage("answer", lambda doc, out: [understand(f"{doc['question'].strip()}\n{SUFFIX}",
                                                             [doc["image"]] if doc["image"] is not None else [],
                                                             ref=doc["doc_id"], max_new_tokens=MAX_NEW_TOKENS,
                                                             **GREEDY)], uses=(MODEL,))]

    def process(self, doc, outputs):
        text = text_of(outputs["answer"][0])
        if text is None:
            scored = "no" if doc["label"] == "yes" else "yes"   # failed: the wrong answer
        elif self.profile == "official":
            scored = scoring.extract_yes_no(text)
        else:
            scored = text.lower().strip()
        return {"question_id": doc["question_id"], "category": doc["category"], "label": doc["label"],
                "prediction": text, "scored_prediction": scored, "failed": text is None,
                "correct": scored == doc["label"]}

    def aggregate(self, records):
        result = scoring.pope_split_metrics([(r["category"], r["scored_prediction"], r["label"]) for r in records],
                                            self.profile)
        metrics = {}
        for split in sorted(result["splits"]):
            m = result["splits"][split]
            metrics[f"{split}_accuracy"] = mean([float(r["correct"]) for r in records if r["category"] == split])
            for key in ("precision", "recall", "f1", "yes_ratio"):
                metrics[f"{split}_{key}"] = metric(m[key], n=m["n"])
        coded = [(r["category"], _code(r["scored_prediction"]), _code(r["label"])) for r in records]
        headline = bootstrap(lambda items: _mean_f1(items, self.profile), coded)
        headline.value = result["mean_f1"]       # the scoring module's number; the bootstrap gives the stderr
        metrics["f1"] = headline
        metrics["details"] = {"splits": result["splits"], "pooled": result["all"], "mean_f1": result["mean_f1"],
                              "n_failed": sum(r["failed"] for r in records)}
        if result["mean_f1"] is None and result["splits"]:
            metrics["details"]["f1_undefined"] = _why_f1_undefined(result["splits"])
        return metrics

    def settings(self):
        return {"prompt_template": PROMPT_ID, "max_new_tokens": MAX_NEW_TOKENS, **GREEDY,
                "extraction": "evaluate.py heuristic" if self.profile == "official" else "exact match (lmms-eval)",
                "headline": "mean F1 over the splits present", "default_hub": HUB["repo"], "split": HUB["split"]}


def _why_f1_undefined(splits: dict) -> str:
    """Which splits have no F1 and why, as the official script would fail on them (a measurement, not an error)."""
    reasons = []
    for split, m in sorted(splits.items()):
        if m["f1"] is not None:
            continue
        if m["tp"] + m["fp"] == 0:
            why = "no 'yes' prediction, so precision divides by zero"
        elif m["tp"] + m["fn"] == 0:
            why = "no 'yes' label, so recall divides by zero"
        else:
            why = "no true positive, so precision + recall = 0"
        reasons.append(f"{split}: {why}")
    return "; ".join(reasons) + " (the official evaluate.py raises ZeroDivisionError there)"


def _code(answer: str) -> int:
    return 1 if answer == "yes" else 0 if answer == "no" else -1


def _mean_f1(items, profile: str) -> float | None:
    """scoring.pope_split_metrics' mean F1 from pre-coded (split, pred, label) items, fast enough to resample.

    Official predictions are always yes/no after extraction; lmms predictions that are neither (-1) drop out of
    precision and recall, and an undefined lmms value is 0 where the official one is undefined (None).
    """
    counts: dict[str, list[int]] = {}
    for split, p, g in items:
        c = counts.setdefault(split, [0, 0, 0])
        if p == 1:
            c[0 if g == 1 else 1] += 1
        elif p == 0 and g == 1:
            c[2] += 1
    f1s = []
    for tp, fp, fn in counts.values():
        if profile == "official":
            if tp + fp == 0 or tp + fn == 0 or tp == 0:
                return None
            p, r = tp / (tp + fp), tp / (tp + fn)
            f1s.append(2 * p * r / (p + r))
        else:
            p = tp / (tp + fp) if tp + fp else 0
            r = tp / (tp + fn) if tp + fn else 0
            f1s.append(2 * p * r / (p + r) if p + r else 0)
    return sum(f1s) / len(f1s) if f1s else None
