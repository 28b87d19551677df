"""MMMU tasks (`mmmu_val`, `mmmu_dev`): multiple-choice and open questions over 30 subjects, official parsers."""
from __future__ import annotations

import json
import re
from pathlib import Path

from harness.data import content_sha256
from harness.errors import DataError
from harness.metrics import mean
from harness.task import MODEL, DatasetInfo, Stage, Task, understand
from tasks.common import (GREEDY, INCORRECT_OR_EXCLUDE, as_text, bad_row, check_unique, failure_mode, is_local_path,
                          load_source, text_of)

from . import lmms as lmms_mmmu
from . import scoring

IMAGE_COLUMNS = tuple(f"image_{k}" for k in range(1, 8))
IMAGE_REF = re.compile(r"<image (\d+)>")
PROMPT_IDS = {"official": "mmmu-official-llava1.5-v1", "lmms": "mmmu-lmms-v1"}
MAX_NEW_TOKENS = 128


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class MMMUVal(Task):
    """MMMU validation (900 = 847 multiple-choice + 53 open, 30 per subject; lmms-lab/MMMU split `validation`).

    Data: default hub copy lmms-lab/MMMU (merged, config default); `--data hub:lmms-lab-encoder/MMMU` reads
    lmms-eval's current copy; MMMU/MMMU's per-subject configs have the same columns (give a local merged copy).
    Documents are questions, doc id = the `id` column ("validation_Art_1"). Every image referenced as <image k> in
    the question or the options is passed, in image_k order (as lmms-eval does; LLaVA-1.5 passed only image_1).
    Greedy, max_new_tokens 128. `harness score` also takes rows without their image columns, and MMMU's answer key
    (answer_dict_val.json, {id: {question_type, ground_truth}}), scored as main_eval_only.py scores it: its
    multiple-choice predictions must be the already parsed letter (compared as is), open ones are parsed.
    Profiles (scoring.py has the parsers):
    * official - MMMU eval_utils.py; prompt "(A) o1\\n" options, a blank line, then the instruction; open:
      "{question}\\nAnswer the question using a single word or phrase.".
    * lmms - lmms-eval: "A. o1" options; blank line before the open instruction too; MC parser looks for "L "
      with no leading space ("DNA " parses as A) and adds an "L." step. lmms-eval's open-answer bug (#1436, every
      open question scores 0) is NOT reproduced: both profiles score open answers with the official parser.
    Reproduced quirk: an unparsed multiple-choice answer gets random.choice over its letters from one generator
    seeded 42 (the official module seeds at import), so the draw depends on call order. Draws happen in
    aggregate(), in document order, never in process(), so results do not depend on the number of processes;
    details report how often the draw fired and the accuracy without it. lmms-eval's draw is unseeded; the lmms
    profile uses the same seeded draw. A failed request (in `score`, a missing prediction) is wrong (no draw) and
    counted; option failure_mode="exclude" leaves it out instead, as main_eval_only.py scores only the ids in its
    predictions file. Overall and discipline accuracy are instance-weighted (micro); the official report rounds to
    3 decimals (details.rounded).
    """

    lmms = lmms_mmmu.EQUIVALENT
    name = "mmmu_val"
    model_kinds = ("understand",)
    version = "1"
    description = "MMMU validation: accuracy over 30 subjects (lmms-lab/MMMU, split validation)"
    profiles = ("official", "lmms")
    headline = "accuracy"
    # the head of lmms-lab/MMMU's main branch as the hub's file listing shows it ("Update README.md", 4 commits)
    hub = {"repo": "lmms-lab/MMMU", "config": None, "split": "validation",
           "revision": "364f2e2eb107b36e07ff4c5a15f5947a759cef47"}
    world = "mmmu"
    options_help = {"failure_mode": "incorrect (a failed request or missing prediction counts as wrong, default) or "
                                    "exclude (left out, as main_eval_only.py scores only the ids it has predictions "
                                    "for)"}
    option_types = {"failure_mode": INCORRECT_OR_EXCLUDE}

    def __init__(self, data=None, profile=None, limit=None, **options):
        super().__init__(data, profile, limit, **options)
        self.failure_mode = failure_mode(self, INCORRECT_OR_EXCLUDE)

    # --- data ---------------------------------------------------------------------------------------------
    def load(self):
        key = self._answer_key()
        if key is not None:
            return key
        rows, info = load_source(self, self.hub, self.world, image_columns=IMAGE_COLUMNS,
                                 required=("id", "question", "options", "answer", "question_type"))
        docs = [self._doc(row, n, info) for n, row in enumerate(rows, 1)]
        check_unique([d["doc_id"] for d in docs], info, "id")
        return docs, info

    def _answer_key(self):
        """Documents from MMMU's answer key ({id: {question_type, ground_truth}}, as main_eval_only.py reads it), or
        None when --data is not one. It has no questions, options or images, so it can only score predictions."""
        path = Path(self.data).expanduser() if is_local_path(self.data) else None
        if path is None or path.suffix != ".json" or not path.is_file():
            return None
        try:
            key = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None                 # not an answer key: the table loader names the problem
        if not (isinstance(key, dict) and key and all(isinstance(v, dict) and "ground_truth" in v
                                                      for v in key.values())):
            return None
        if not self.score_only:
            raise DataError(f"--data {path}: MMMU's answer key has no questions, options or images; it can only "
                            "score predictions (`harness score`); give the dataset rows to evaluate a model")
        docs = []
        for n, (doc_id, entry) in enumerate(key.items(), 1):
            try:
                subject = scoring.subject_from_id(doc_id)
            except ValueError:
                raise bad_row(str(path), n, "id", f"{doc_id!r} is not <split>_<Subject>_<number>") from None
            docs.append({"doc_id": doc_id, "subject": subject, "question": None, "options": [],
                         "question_type": as_text(entry.get("question_type"), str(path), n, "question_type"),
                         "answer": entry["ground_truth"], "images": [], "answer_key": True})
        return docs, DatasetInfo("path", str(path), sha256=content_sha256(docs),
                                 extra={"format": "answer key (main_eval_only.py)"})

    def _doc(self, row, n: int, info) -> dict:
        doc_id = as_text(row["id"], info, n, "id")
        try:
            subject = scoring.subject_from_id(doc_id)
        except ValueError:
            raise bad_row(info, n, "id", f"{doc_id!r} is not <split>_<Subject>_<number>") from None
        # as in the official evaluation, every type other than multiple-choice is open ("open" on the hub,
        # "short-answer" in the official answer key)
        qtype = as_text(row["question_type"], info, n, "question_type")
        try:
            options = scoring.parse_options(row["options"] if row["options"] is not None else "[]")
        except (ValueError, SyntaxError):
            raise bad_row(info, n, "options", "not a Python list of option texts") from None
        if qtype == "multiple-choice" and not options:
            raise bad_row(info, n, "options", "a multiple-choice question with no options")
        question = as_text(row["question"], info, n, "question")
        refs = sorted({int(k) for text in [question, *options] for k in IMAGE_REF.findall(text)})
        images = []
        for k in refs:
            column = f"image_{k}"
            if row.get(column) is None:
                if self.score_only:        # scoring stored predictions needs no pixels
                    continue
                raise bad_row(info, n, column, f"the question refers to <image {k}> but the row has no {column}")
            images.append(row[column])
        return {"doc_id": doc_id, "subject": subject, "question": question, "options": options,
                "question_type": qtype, "answer": scoring.parse_gold(row["answer"]), "images": images}

    # --- requests and scoring -----------------------------------------------------------------------------
    def stages(self):
        def build(doc, out):
            if doc.get("answer_key"):       # no question to ask: only a stored prediction can answer it
                return [understand("", [], ref=doc["doc_id"])]
            text = scoring.build_prompt(doc["question"], doc["options"], doc["question_type"], self.profile)
            return [understand(text, doc["images"], ref=doc["doc_id"], max_new_tokens=MAX_NEW_TOKENS, **GREEDY)]
        return [Stage("answer", build, uses=(MODEL,))]

    def process(self, doc, outputs):
        text = text_of(outputs["answer"][0])
        record = {"id": doc["doc_id"], "subject": doc["subject"], "question_type": doc["question_type"],
                  "answer": doc["answer"], "n_choices": len(doc["options"]), "prediction": text,
                  "failed": text is None, "parsed_pred": None, "correct": False, "needs_random_fallback": False}
        if text is not None and doc.get("answer_key"):
            s = scoring.score_answer_key(text, doc["question_type"], doc["answer"])
            record.update(parsed_pred=s["parsed_pred"], correct=bool(s["correct"]))
        elif text is not None:
            # rng=None: an unparsed choice is left for aggregate(), which draws in document order
            s = scoring.score_sample(text, doc["question_type"], doc["options"], doc["answer"], None, self.profile)
            record.update(parsed_pred=s["parsed_pred"], correct=bool(s["correct"]),
                          needs_random_fallback=bool(s["random_fallback"]))
        return record

    def _final(self, records) -> tuple[list[dict], int, int]:
        """Per-sample correctness after the official seeded fallback, drawn in document order."""
        rng = scoring.make_official_rng()
        fired = fired_correct = 0
        final = []
        for r in records:
            correct = r["correct"]
            if r["needs_random_fallback"]:
                letters = [chr(ord("A") + i) for i in range(r["n_choices"])]
                correct = scoring.eval_multi_choice(r["answer"], rng.choice(letters))
                fired += 1
                fired_correct += correct
            final.append({"subject": r["subject"], "correct": bool(correct)})
        return final, fired, fired_correct

    def aggregate(self, records):
        failed = sum(r["failed"] for r in records)
        if self.failure_mode == "exclude":
            records = [r for r in records if not r["failed"]]
        final, fired, fired_correct = self._final(records)
        summary = scoring.aggregate(final)
        metrics = {"accuracy": mean([float(s["correct"]) for s in final])}
        for discipline, subjects in scoring.DOMAIN_CAT2SUB_CAT.items():
            values = [float(s["correct"]) for s in final if s["subject"] in subjects]
            if values:
                metrics[slug(discipline)] = mean(values)
        overall = summary["overall"]["acc"]
        digits = scoring.ROUND_DIGITS[self.profile]
        metrics["details"] = {
            "rounded": None if overall is None else round(overall, digits),
            "per_subject": summary["subjects"],
            "per_discipline": summary["disciplines"],
            "n_multiple_choice": sum(r["question_type"] == "multiple-choice" for r in records),
            "n_open": sum(r["question_type"] != "multiple-choice" for r in records),
            "n_failed": failed,
            "failure_mode": self.failure_mode,
            "n_random_fallback": fired,
            "n_random_fallback_correct": fired_correct,
            "accuracy_without_random_fallback": (sum(r["correct"] for r in records) / len(records)
                                                 if records else None),
        }
        return metrics

    def settings(self):
        return {"prompt_template": PROMPT_IDS[self.profile], "max_new_tokens": MAX_NEW_TOKENS, **GREEDY,
                "images": "every <image k> referenced in question and options, in k order",
                "mc_parser": self.profile, "random_fallback": "random.Random(42), drawn in document order",
                "failure_rule": ("a failed request or missing prediction is wrong and counted"
                                 if self.failure_mode == "incorrect" else
                                 "failed requests and missing predictions are left out and counted "
                                 "(main_eval_only.py scores the ids it has predictions for)"),
                "default_hub": self.hub["repo"], "split": self.hub["split"]}


class MMMUDev(MMMUVal):
    """MMMU dev (150 = 5 per subject; lmms-lab/MMMU split `dev`), the few-shot pool, scored like mmmu_val."""

    name = "mmmu_dev"
    description = "MMMU dev: accuracy over 30 subjects (lmms-lab/MMMU, split dev)"
    hub = {**MMMUVal.hub, "split": "dev"}

