"""MMBench-EN tasks: CircularEval on dev (`mmbench_en_dev`) and the server submission for test (`mmbench_en_test`)."""
from __future__ import annotations

import csv
import io
from collections import defaultdict

from pathlib import Path

from harness.data import content_sha256
from harness.errors import DataError
from harness.metrics import bootstrap
from harness.options import as_bool
from harness.task import MODEL, DatasetInfo, Stage, Task, score, scorer_target, understand
from tasks.common import GREEDY, as_int, as_text, bad_row, is_local_path, load_source, text_of

from . import lmms as lmms_mmbench
from . import scoring

PROMPT_IDS = {"official": "mmbench-vlmevalkit-v1", "lmms": "mmbench-lmms-v1"}
MAX_NEW_TOKENS = {"official": 512, "lmms": 1024}
JUDGE_PROMPT_IDS = {"official": "mmbench-judge-vlmevalkit-z-v1", "lmms": "mmbench-judge-lmms-e-v1"}
# VLMEvalKit multiple_choice.build_prompt; lmms-eval's MMBench_Evaluator uses the same text with E for "none"
JUDGE_TEMPLATE = (
    "You are an AI assistant who will help me to match an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, and you need to find which option is most "
    "similar to the answer. If the meaning of all options are significantly different from the answer, output "
    "{none}. Your should output a single uppercase character in A, B, C, D (if they are valid options), and {none}. "
    "\nExample 1: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\nExample 2: \nQuestion: What is the main object in image?\n"
    "Options: A. teddy bear B. rabbit C. cat D. dog\nAnswer: Spider\nYour output: {none}\nExample 3: \n"
    "Question: {question}?\nOptions: {options}\nAnswer: {prediction}\nYour output: ")


class MMBenchEnDev(Task):
    """MMBench-EN dev with CircularEval (1,164 questions = 4,329 circular rows; lmms-lab/MMBench config en).

    Data: default hub copy lmms-lab/MMBench (config `en`, split `dev`, the 20231003 data); `--data
    hub:lmms-lab-encoder/MMBench` reads lmms-eval's current copy; the official TSV (one row per circular pass,
    images as base64 text, tasks/mmbench/tsv.py) works as --data PATH, and `harness score` also takes it without
    its image column. The older lmms-lab/MMBench_EN (20230712, 4,377 rows) is a different data version.
    One document per question: all rows with the same index % 1,000,000, doc id str(pass-0 index); one request per
    pass, ref str(index) (what `score` predictions are keyed by). Rows of a group without its pass-0 row are dropped
    and counted (DatasetInfo extra.orphan_groups), as upstream skips them.
    Profiles (scoring.py has the extraction rules):
    * official - VLMEvalKit / leaderboard: "Hint: ..\\nQuestion: ..\\nOptions:\\nA. ..\\n" + "Please select the
      correct answer from the options above. \\n"; can_infer with refusals -> Z and the "answer is X" pattern;
      max_new_tokens 512 (VLMEvalKit's default for LLaVA/Janus-style models).
    * lmms - lmms-eval mmbench_en_dev prompt ("{hint} {question} There are several options:\\nA. .." + "\\n\\nAnswer
      with the option's letter from the given choices directly."), lmms can_infer, max_new_tokens 1024.
    Scoring: a question hits only if every pass's extracted letter equals that pass's answer. Unparsed passes are
    wrong and counted (details.n_unparsed_passes): no random letter (the upstream last resort) is ever drawn.
    LLM judge: off by default (VLMEvalKit's exact-matching mode). With the task option judge=True, a second stage
    sends each unparsed pass of a question with no wrongly parsed and no failed pass (upstream's prefetch
    short-circuit: such a question is already missed) to the scorer "judge" with VLMEvalKit's matching prompt
    (lmms: E as the none-letter); the judge's text is re-parsed with can_infer. One attempt (upstream retries 3
    times, then draws at random): an unresolved pass stays wrong and is counted. A failed request is wrong and
    counted. circular_accuracy is a fraction (lmms-eval prints x100).
    """

    lmms = lmms_mmbench.EQUIVALENT
    name = "mmbench_en_dev"
    model_kinds = ("understand",)
    version = "1"
    description = "MMBench-EN dev: CircularEval accuracy (lmms-lab/MMBench, config en, split dev)"
    profiles = ("official", "lmms")
    headline = "circular_accuracy"
    options_help = {"judge": "send answers no rule can parse to the `judge` scorer (default false)"}
    option_types = {"judge": "bool"}
    # the head of lmms-lab/MMBench's main branch as the hub's file listing shows it ("Upload dataset", 10 commits)
    hub = {"repo": "lmms-lab/MMBench", "config": "en", "split": "dev",
           "revision": "56ba1af8954932c4804bd3f522e05ed96e63b654"}
    world = "mmbench"
    has_answers = True

    @property
    def judge(self) -> bool:
        return as_bool(self.options.get("judge", False))

    # --- data ---------------------------------------------------------------------------------------------
    def load(self):
        required = ("index", "question") + (() if self.score_only else ("image",)) + \
            (("answer",) if self.has_answers else ())
        rows, info = self._tsv(required) or load_source(self, self.hub, self.world, image_columns=("image",),
                                                        required=required)
        groups: dict[int, list[dict]] = defaultdict(list)
        seen: dict[int, int] = {}
        for n, row in enumerate(rows, 1):
            p = self._pass(row, n, info)
            if p["index"] in seen:
                raise DataError(f"{info.name}: rows {seen[p['index']]} and {n} have the same index {p['index']}")
            seen[p["index"]] = n
            groups[p["index"] % scoring.CIRCULAR_MOD].append(p)
        docs, orphans = [], 0
        for key in sorted(groups):
            passes = sorted(groups[key], key=lambda p: p["index"])
            if passes[0]["index"] != key:
                orphans += 1
                continue
            docs.append({"doc_id": str(key), "index": key, "passes": passes})
        if orphans:
            info.extra["orphan_groups"] = orphans
        return docs, info

    def _tsv(self, required) -> tuple[list[dict], DatasetInfo] | None:
        """MMBench's own TSV (base64 image column, or none at all when only scoring), or None for other data."""
        path = Path(self.data).expanduser() if is_local_path(self.data) else None
        if path is None or path.suffix.lower() != ".tsv" or not path.is_file():
            return None
        from .tsv import read_tsv

        rows = read_tsv(path)
        for n, row in enumerate(rows, 1):
            missing = [c for c in required if c not in row]
            if missing:
                raise bad_row(str(path), n, missing[0], "missing" + (" (a TSV without images can only be scored: "
                              "`harness score`)" if missing[0] == "image" else ""))
        return rows, DatasetInfo("path", str(path), sha256=content_sha256(rows))

    def _pass(self, row, n: int, info) -> dict:
        p = dict(row)
        p["index"] = as_int(row["index"], info, n, "index")
        as_text(row["question"], info, n, "question")
        if row.get("image") is None and not self.score_only:
            raise bad_row(info, n, "image", "no image (rows without images can only be scored: `harness score`)")
        choices = scoring.build_choices(p, "official")
        if not choices:
            raise bad_row(info, n, "A", "no options (columns A, B, ...)")
        if self.has_answers and str(row["answer"]) not in choices:
            raise bad_row(info, n, "answer", f"{row['answer']!r} is not one of the options {''.join(choices)}")
        return p

    # --- requests -----------------------------------------------------------------------------------------
    def _prompt(self, p: dict) -> str:
        if self.profile == "official":
            return scoring.build_prompt_vlmevalkit(p)
        return scoring.build_prompt_lmms(p)

    def stages(self):
        answer = Stage("answer", lambda doc, out: [
            understand(self._prompt(p), [p["image"]] if p.get("image") is not None else [], ref=str(p["index"]),
                       max_new_tokens=MAX_NEW_TOKENS[self.profile], **GREEDY) for p in doc["passes"]], uses=(MODEL,))
        if not self.judge:
            return [answer]
        judge = Stage("judge", lambda doc, out: [
            score("judge", "judge", text=self._judge_prompt(doc["passes"][j], text_of(out["answer"][j])),
                  ref=f"{doc['passes'][j]['index']}:judge")
            for j in self._judge_targets(doc, out["answer"])], uses=(scorer_target("judge"),))
        return [answer, judge]

    def _letter(self, p: dict, text: str | None) -> str | None:
        if text is None:
            return None
        text = text.strip() if self.profile == "lmms" else text
        return scoring.can_infer(text, scoring.build_choices(p, self.profile), self.profile)

    def _judge_targets(self, doc, answers) -> list[int]:
        """Passes the judge sees: the unparsed ones, unless a parsed pass is already wrong (the question missed)."""
        if any(text_of(r) is None for r in answers):        # a failed pass already loses the question
            return []
        letters = [self._letter(p, text_of(r)) for p, r in zip(doc["passes"], answers)]
        if any(l is not None and l != str(p["answer"]) for l, p in zip(letters, doc["passes"])):
            return []
        return [j for j, letter in enumerate(letters) if letter is None]

    def _judge_prompt(self, p: dict, prediction: str) -> str:
        choices = scoring.build_choices(p, self.profile)
        options = "There are several options: \n" + "".join(f"{k}. {v}\n" for k, v in choices.items())
        return JUDGE_TEMPLATE.format(none="Z" if self.profile == "official" else "E", question=p["question"],
                                     options=options, prediction=prediction.strip())

    # --- scoring ------------------------------------------------------------------------------------------
    def process(self, doc, outputs):
        answers = outputs["answer"]
        texts = [text_of(r) for r in answers]
        judged = dict(zip(self._judge_targets(doc, answers), outputs.get("judge", []))) if self.judge else {}
        rows = []
        for j, (p, text) in enumerate(zip(doc["passes"], texts)):
            shown = text_of(judged[j]) if j in judged else text
            rows.append({**{k: v for k, v in p.items() if k != "image"}, "prediction": shown or ""})
        q = scoring.circular_eval(rows, self.profile)["questions"][0]
        letters = [self._letter(p, t) for p, t in zip(doc["passes"], texts)]
        passes = [{"index": d["index"], "prediction": t, "pred": d["pred"], "answer": d["answer"],
                   "correct": d["correct"], "judged": j in judged}
                  for j, (d, t) in enumerate(zip(q["passes"], texts))]
        return {"index": doc["index"], "hit": q["hit"], "category": q["category"], "l2_category": q["l2_category"],
                "passes": passes, "n_failed": sum(t is None for t in texts),
                "n_unparsed": sum(t is not None and l is None for t, l in zip(texts, letters)),
                "n_refusal": sum(l == "Z" for l in letters), "n_judged": len(judged),
                "n_judge_resolved": sum(1 for j in judged if passes[j]["pred"] is not None)}

    def aggregate(self, records):
        hits = [r["hit"] for r in records]
        details = {
            "percent": 100 * sum(hits) / len(hits) if hits else None,
            "per_category": _group(records, "category"), "per_l2_category": _group(records, "l2_category"),
            "pass0_accuracy": (sum(r["passes"][0]["correct"] for r in records) / len(records)) if records else None,
            "n_questions": len(records), "n_passes": sum(len(r["passes"]) for r in records),
            **{k: sum(r[k] for r in records) for k in ("n_unparsed", "n_failed", "n_refusal", "n_judged",
                                                         "n_judge_resolved")},
        }
        details["n_unparsed_passes"] = details.pop("n_unparsed")
        return {"circular_accuracy": bootstrap(lambda xs: sum(xs) / len(xs), hits), "details": details}

    def settings(self):
        return {"prompt_template": PROMPT_IDS[self.profile], "max_new_tokens": MAX_NEW_TOKENS[self.profile],
                **GREEDY, "extraction": f"can_infer ({self.profile})", "circular": True,
                "judge": {"enabled": self.judge, "scorer": "judge", "prompt": JUDGE_PROMPT_IDS[self.profile],
                          "attempts": 1} if self.judge else {"enabled": False},
                "random_fallback": False, "default_hub": self.hub["repo"], "split": self.hub["split"]}


def _group(records, key: str) -> dict:
    hits: dict[str, list[int]] = defaultdict(list)
    for r in records:
        if r[key] is not None:
            hits[r[key]].append(r["hit"])
    return {k: {"n": len(v), "acc": sum(v) / len(v)} for k, v in sorted(hits.items())}


class MMBenchEnTest(MMBenchEnDev):
    """MMBench-EN test (1,784 questions = 6,666 circular rows): writes the predictions TSV for the MMBench server.

    No public answers, so no accuracy: metrics are counts. The TSV has one row per circular pass with the columns
    the evaluation server reads (index, question, hint, A..D, prediction, category, l2-category, split); the server
    applies extraction and CircularEval itself, so predictions are the model's raw text ("" for a failed request).
    Prompts and generation follow the profile, as for mmbench_en_dev. No judge stage.
    """

    name = "mmbench_en_test"
    description = "MMBench-EN test: predictions TSV for the MMBench server (lmms-lab/MMBench, split test)"
    profiles = ("official", "lmms")
    headline = "answered"
    display_scale = 1.0
    hub = {**MMBenchEnDev.hub, "split": "test"}
    has_answers = False
    SUBMISSION = "mmbench_en_test_predictions.tsv"
    COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "prediction", "category", "l2-category", "split")

    @property
    def judge(self) -> bool:
        return False

    def process(self, doc, outputs):
        passes = []
        for p, r in zip(doc["passes"], outputs["answer"]):
            text = text_of(r)
            row = {c: _cell(p.get(c if c != "l2-category" else "L2-category", p.get(c))) for c in self.COLUMNS}
            row.update(index=p["index"], prediction=text or "", failed=text is None,
                       unparsed=text is not None and self._letter(p, text) is None)
            passes.append(row)
        return {"index": doc["index"], "passes": passes}

    def aggregate(self, records):
        passes = [p for r in records for p in r["passes"]]
        failed = sum(p["failed"] for p in passes)
        return {"answered": len(passes) - failed, "failed": failed,
                "details": {"n_questions": len(records), "n_passes": len(passes), "file": self.SUBMISSION,
                            "n_unparsed_passes": sum(p["unparsed"] for p in passes)}}

    def extra_files(self, records):
        out = io.StringIO()
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(self.COLUMNS)
        for r in records:
            for p in r["passes"]:
                writer.writerow([p[c] for c in self.COLUMNS])
        return {self.SUBMISSION: out.getvalue()}


def _cell(value) -> str:
    return "" if scoring.is_missing(value) else str(value)

