"""VQAv2 tasks: validation accuracy (`vqav2_val`) and the EvalAI test-dev submission (`vqav2_testdev`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from harness.data import load_rows
from harness.metrics import mean
from harness.task import MODEL, Stage, Task, understand
from tasks.common import GREEDY, as_int, as_text, bad_row, check_unique, is_local_path, load_source, text_of

from . import lmms as lmms_vqav2
from . import scoring

SUFFIX = "Answer the question using a single word or phrase."
PROMPT_ID = "vqa-short-answer-newline-v1"
MAX_NEW_TOKENS = 16


def build_prompt(question: str) -> str:
    """lmms-eval / LLaVA-1.5 short-answer prompt (newline separator, as lmms-eval writes it)."""
    return f"{question}\n{SUFFIX}"


def submission_answer(text: str) -> str:
    """The answer as LLaVA's convert_vqav2_for_submission.py sends it: the full EvalAIAnswerProcessor.

    word_tokenize (lower-case, delete "," and "?", "'s" -> " 's"), newline/tab -> space, then punctuation and
    digit/article processing with EvalAI's comma rule (the same rule as the lmms profile of `scoring`).
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return scoring.normalize_answer(scoring.clean_whitespace(text), "lmms")


class VQAv2Val(Task):
    """VQAv2 validation (214,354 questions of lmms-lab/VQAv2, split `validation`), scored with VQA accuracy.

    Data: default hub copy lmms-lab/VQAv2 (the id most papers and older lmms-eval used); `--data
    hub:lmms-lab-encoder/VQAv2` reads lmms-eval's current copy; `--data PATH` rows in that schema, or the official
    questions + annotations JSON files (the pair vqaEval.py reads; images from the option image_root;
    official_files.py). `harness score` needs no images. Documents are questions, doc id str(question_id).
    Prompt (both profiles): "{question}\\nAnswer the question using a single word or phrase.", greedy,
    max_new_tokens 16 (lmms-eval; TorchUMM joins with a space instead, not reproduced).
    Profiles (scoring.py has the rules):
    * official - GT-Vision-Lab vqaEval.py: normalisation runs only when the 10 GT answers disagree, so "Yes" scores
      0 against 10x"yes" (a reproduced quirk; also the period regex and its 32-removal cap).
    * lmms - lmms-eval: always normalises; comma rule (?<=\\d)(,)+(?=\\d).
    A failed request scores 0 and is counted (details.n_failed). Accuracy is a fraction (official prints
    round(100*acc, 2): details.percent).
    """

    lmms = lmms_vqav2.EQUIVALENT
    name = "vqav2_val"
    model_kinds = ("understand",)
    version = "1"
    description = "VQAv2 validation: VQA accuracy (lmms-lab/VQAv2, split validation)"
    profiles = ("official", "lmms")
    headline = "accuracy"
    options_help = {"image_root": "folder of the COCO images the official questions file names by image_id"}
    option_types = {"image_root": "str"}
    # the head of lmms-lab/VQAv2's main branch as the hub's file listing shows it ("Update README.md", 138 commits)
    hub = {"repo": "lmms-lab/VQAv2", "config": None, "split": "validation",
           "revision": "32665d35052eb4a6d4414851c3c829a72754915a"}
    world = "vqav2"
    #: test splits have no public answers
    has_answers = True

    # --- data ---------------------------------------------------------------------------------------------
    def load(self):
        required = ("question_id", "question") + (() if self.score_only else ("image",)) + \
            (("answers",) if self.has_answers else ())
        rows, info = self._official_files() or load_source(self, self.hub, self.world, image_columns=("image",),
                                                          required=required)
        docs = [self._doc(row, n, info) for n, row in enumerate(rows, 1)]
        check_unique([d["doc_id"] for d in docs], info, "question_id")
        return docs, info

    def _official_files(self):
        """Rows from the official questions (+ annotations) JSON files at --data, or None for any other data."""
        if not is_local_path(self.data):
            return None
        from harness.data import content_sha256
        from harness.task import DatasetInfo

        from .official_files import read_official

        path = Path(self.data).expanduser()
        rows = read_official(path, self.has_answers, self.options.get("image_root"), self.score_only)
        if rows is None:
            return None
        return rows, DatasetInfo("path", str(path), sha256=content_sha256(rows),
                                 extra={"format": "official questions + annotations JSON"})

    def _doc(self, row: Mapping[str, Any], n: int, info) -> dict:
        qid = as_int(row["question_id"], info, n, "question_id")
        if row.get("image") is None and not self.score_only:
            raise bad_row(info, n, "image", "no image (rows without images can only be scored: `harness score`)")
        doc = {"doc_id": str(qid), "question_id": qid, "question": as_text(row["question"], info, n, "question"),
               "image": row.get("image"), "answer_type": row.get("answer_type"),
               "question_type": row.get("question_type")}
        if self.has_answers:
            answers = row["answers"]
            if not isinstance(answers, (list, tuple)) or not answers:
                raise bad_row(info, n, "answers", "expected a non-empty list of answers")
            try:
                doc["answers"] = scoring.answer_strings(answers)
            except (TypeError, KeyError):
                raise bad_row(info, n, "answers", "expected {answer, ...} records or strings") from None
        return doc

    # --- requests and scoring -----------------------------------------------------------------------------
    def stages(self):
        return [Stage("answer", lambda doc, out: [understand(build_prompt(doc["question"]),
                                                             [doc["image"]] if doc["image"] is not None else [],
                                                             ref=doc["doc_id"], max_new_tokens=MAX_NEW_TOKENS,
                                                             **GREEDY)], uses=(MODEL,))]

    def process(self, doc, outputs):
        text = text_of(outputs["answer"][0])
        record = {"question_id": doc["question_id"], "answer_type": doc["answer_type"],
                  "question_type": doc["question_type"], "prediction": text, "failed": text is None}
        if text is None:
            record.update(accuracy=0.0, normalized_prediction=None)
        else:
            d = scoring.vqa_score_details(text, doc["answers"], self.profile)
            record.update(accuracy=d["accuracy"], normalized_prediction=d["prediction"],
                          normalized=d["normalized"], num_matches=d["num_matches"])
        return record

    def aggregate(self, records):
        if not records:
            return {"accuracy": mean([]), "details": {"n_failed": 0}}
        summary = scoring.aggregate_vqa(records)
        return {
            "accuracy": mean([r["accuracy"] for r in records]),
            "details": {
                "percent": summary["overall"]["percent"],
                "per_answer_type": summary["per_answer_type"],
                "per_question_type": summary["per_question_type"],
                "n_failed": sum(r["failed"] for r in records),
            },
        }

    def settings(self):
        return {"prompt_template": PROMPT_ID, "max_new_tokens": MAX_NEW_TOKENS, **GREEDY,
                "normalisation": "conditional (official vqaEval.py)" if self.profile == "official"
                else "always (lmms-eval)", "default_hub": self.hub["repo"], "split": self.hub["split"]}


class VQAv2TestDev(VQAv2Val):
    """VQAv2 test-dev (107,394 questions, lmms-lab/VQAv2 split `testdev`): writes the EvalAI submission.

    No public answers, so no accuracy: metrics are counts. The submission file holds one {"question_id",
    "answer"} for EVERY test2015 question (447,793), as EvalAI requires even for the test-dev phase; questions not
    answered here (or whose request failed) get "", as LLaVA's convert_vqav2_for_submission.py does. Answers are
    normalised with the full EvalAIAnswerProcessor before submission, as LLaVA does (official scoring on the server
    normalises only when the GT answers disagree, so raw capitals or periods would lose points).
    The test2015 question list comes from the option `test_questions` (a file with question_id rows, e.g. the
    official v2_OpenEnded_mscoco_test2015_questions.json), else from the hub `test` split of the same repository
    when the data came from the hub; otherwise the file holds only the evaluated questions and details say so.
    """

    name = "vqav2_testdev"
    description = "VQAv2 test-dev: EvalAI submission file (lmms-lab/VQAv2, split testdev)"
    profiles = ("official",)
    headline = "answered"
    options_help = {**VQAv2Val.options_help,
                    "test_questions": "VQAv2 test2015 questions file: every question the EvalAI submission must hold"}
    option_types = {**VQAv2Val.option_types, "test_questions": "str"}
    display_scale = 1.0
    hub = {**VQAv2Val.hub, "split": "testdev"}
    has_answers = False
    SUBMISSION = "vqav2_test2015_submission.json"

    def process(self, doc, outputs):
        text = text_of(outputs["answer"][0])
        return {"question_id": doc["question_id"], "prediction": text, "failed": text is None,
                "answer": "" if text is None else submission_answer(text)}

    def _all_question_ids(self) -> tuple[list[int] | None, str]:
        """The test2015 question ids and where they came from (cached: aggregate and extra_files both need it)."""
        if not hasattr(self, "_test_ids"):
            self._test_ids = self._read_test_ids()
        return self._test_ids

    def _read_test_ids(self) -> tuple[list[int] | None, str]:
        path = self.options.get("test_questions")
        if path:
            rows = load_rows(path, required=("question_id",), what="test_questions")
            return [as_int(r["question_id"], str(path), n, "question_id") for n, r in enumerate(rows, 1)], str(path)
        if self.data is not None and (is_local_path(self.data) or self.data.startswith("shapes")):
            return None, "evaluated questions only (no test2015 question list for local or world data)"
        if self.data is None:
            repo, revision = self.hub["repo"], self.hub["revision"]
        else:
            repo, _, revision = self.data[len("hub:"):].partition("@")
        try:
            from harness.hub import online

            online()            # unreachable hub: read the cache only, no retries
            import datasets

            ds = datasets.load_dataset(repo, self.hub["config"], split="test", revision=revision or None)
            return [int(q) for q in ds.select_columns(["question_id"])["question_id"]], f"{repo} split test"
        except Exception as e:  # offline or missing: keep the answers, say what is incomplete
            return None, f"evaluated questions only ({repo} split test unavailable: {type(e).__name__})"

    def _submission(self, records) -> tuple[list[dict], dict]:
        entries = [{"question_id": r["question_id"], "answer": r["answer"]} for r in records]
        answered = {r["question_id"] for r in records}
        ids, source = self._all_question_ids()
        filled = 0
        for qid in ids or ():
            if qid not in answered:
                entries.append({"question_id": qid, "answer": ""})
                answered.add(qid)
                filled += 1
        return entries, {"file": self.SUBMISSION, "entries": len(entries), "filled_with_empty": filled,
                         "question_list": source, "complete": ids is not None}

    def aggregate(self, records):
        failed = sum(r["failed"] for r in records)
        _, info = self._submission(records)
        return {"answered": len(records) - failed, "failed": failed, "details": {"submission": info}}

    def extra_files(self, records):
        entries, _ = self._submission(records)
        return {self.SUBMISSION: json.dumps(entries)}

    def settings(self):
        base = {k: v for k, v in super().settings().items() if k != "normalisation"}
        return {**base, "submission_normalisation": "EvalAIAnswerProcessor (LLaVA)",
                "test_questions": self.options.get("test_questions")}
