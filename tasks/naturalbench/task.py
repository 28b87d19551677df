"""NaturalBench (`naturalbench`): paired questions x paired images, group accuracy (G-Acc) and friends."""
from __future__ import annotations

from harness.metrics import mean
from harness.task import MODEL, Stage, Task, understand
from tasks.common import GREEDY, as_int, as_text, bad_row, check_unique, load_source, metric, text_of

from . import lmms as lmms_naturalbench
from . import scoring

PROMPT_IDS = {"official": "naturalbench-official-nosep-v1", "lmms": "naturalbench-lmms-space-v1"}
MAX_NEW_TOKENS = 16
IMAGE_COLUMNS = ("Image_0", "Image_1")
REQUIRED = ("Index", "Image_0", "Image_1", "Question_0", "Question_1", "Image_0_Question_0", "Image_1_Question_0",
            "Image_0_Question_1", "Image_1_Question_1", "Question_Type")


class NaturalBench(Task):
    """NaturalBench (1,900 groups of 2 questions x 2 images = 7,600 VQA samples; BaiqiL/NaturalBench split train).

    Data: the official grouped schema (Index, Image_0, Image_1, Question_0/1, Image_k_Question_j, Question_Type,
    Source; `harness score` also takes the rows without their image columns); the flattened
    BaiqiL/NaturalBench-lmms-eval copy is not read. One document per group, doc id
    str(Index); four requests in the order (q0,i0), (q0,i1), (q1,i0), (q1,i1), ref "{Index}:q{j}:i{k}".
    Prompt: question + "Please answer Yes or No." (yes_no) or + "Please output the letter corresponding to the
    correct option." (multiple_choice); greedy, max_new_tokens 16 (lmms-eval).
    Profiles: official joins question and suffix with NO separator (as naturalbench_vqa.py does); lmms (and
    VLMEvalKit) with one space. Extraction and scores are the official ones in both (scoring.py): first whole-word
    yes/no (A/B), case-insensitive, so "It is a B" parses as A (reproduced quirk); unparsed (-1) is wrong.
    Deliberate difference: upstream scores every group against the fixed pattern Yes/No/No/Yes (A/B/B/A) and never
    reads the answer columns; here each group is scored against its own Image_k_Question_j columns (identical on
    groups that follow the pattern), and groups that deviate are listed in details.deviating_groups. The plain Acc
    that lmms-eval silently drops (metric-name mismatch) is reported as `acc`. A failed request is wrong (-1) and
    counted. All four metrics are means over groups (g_acc of 0/1, acc of k/4, q_acc and i_acc of k/2).
    """

    lmms = lmms_naturalbench.EQUIVALENT
    name = "naturalbench"
    model_kinds = ("understand",)
    version = "1"
    description = "NaturalBench: group accuracy G-Acc over 1,900 groups (BaiqiL/NaturalBench, split train)"
    profiles = ("official", "lmms")
    headline = "g_acc"
    hub = {"repo": "BaiqiL/NaturalBench", "config": None, "split": "train", "revision": None,
           "unpinned": "no commit of it could be checked for this release"}
    world = "naturalbench"

    # --- data ---------------------------------------------------------------------------------------------
    def load(self):
        # scoring stored predictions needs the questions and answers, not the pixels
        required = [c for c in REQUIRED if not (self.score_only and c in IMAGE_COLUMNS)]
        rows, info = load_source(self, self.hub, self.world, image_columns=IMAGE_COLUMNS, required=required)
        docs = [self._doc(row, n, info) for n, row in enumerate(rows, 1)]
        check_unique([d["doc_id"] for d in docs], info, "Index")
        return docs, info

    def _doc(self, row, n: int, info) -> dict:
        index = as_int(row["Index"], info, n, "Index")
        qtype = row["Question_Type"]
        if qtype not in scoring.QUESTION_TYPES:
            raise bad_row(info, n, "Question_Type", f"expected one of {scoring.QUESTION_TYPES}, got {qtype!r}")
        for column in IMAGE_COLUMNS:
            if row.get(column) is None and not self.score_only:
                raise bad_row(info, n, column, "no image (rows without images can only be scored: `harness score`)")
        gt = []
        for i, j in scoring.SAMPLE_ORDER:
            column = f"Image_{j}_Question_{i}"
            try:
                gt.append(scoring.encode_answer(row[column], qtype))
            except ValueError as e:
                raise bad_row(info, n, column, str(e)) from None
        return {"doc_id": str(index), "index": index, "question_type": qtype, "gt": gt,
                "questions": [as_text(row[f"Question_{i}"], info, n, f"Question_{i}") for i in (0, 1)],
                "images": [row.get(c) for c in IMAGE_COLUMNS]}

    # --- requests and scoring -----------------------------------------------------------------------------
    def stages(self):
        def build(doc, out):
            return [understand(scoring.build_prompt(doc["questions"][i], doc["question_type"], self.profile),
                               [doc["images"][j]] if doc["images"][j] is not None else [],
                               ref=f"{doc['index']}:q{i}:i{j}",
                               max_new_tokens=MAX_NEW_TOKENS, **GREEDY)
                    for i, j in scoring.SAMPLE_ORDER]
        return [Stage("answer", build, uses=(MODEL,))]

    def process(self, doc, outputs):
        texts = [text_of(r) for r in outputs["answer"]]
        pred = [-1 if t is None else scoring.extract_answer(t, doc["question_type"]) for t in texts]
        s = scoring.group_scores([pred], [doc["gt"]])
        return {"index": doc["index"], "question_type": doc["question_type"], "gt": doc["gt"], "pred": pred,
                "predictions": texts, "acc": s["Acc"], "q_acc": s["Q_Acc"], "i_acc": s["I_Acc"], "g_acc": s["G_Acc"],
                "n_failed": sum(t is None for t in texts),
                "n_unparsed": sum(t is not None and p == -1 for t, p in zip(texts, pred))}

    def aggregate(self, records):
        if not records:
            return {k: mean([]) for k in ("g_acc", "acc", "q_acc", "i_acc")}
        totals = scoring.group_scores([r["pred"] for r in records], [r["gt"] for r in records])
        metrics = {}
        for key, name in (("g_acc", "G_Acc"), ("acc", "Acc"), ("q_acc", "Q_Acc"), ("i_acc", "I_Acc")):
            m = mean([r[key] for r in records])
            # the scoring module's Σ/(kN) is the number; the mean of per-group values gives its stderr
            metrics[key] = metric(totals[name], m.stderr, m.n)
        pattern = list(scoring.OFFICIAL_PATTERN)
        by_type = {}
        for qtype in sorted({r["question_type"] for r in records}):
            rs = [r for r in records if r["question_type"] == qtype]
            by_type[qtype] = scoring.group_scores([r["pred"] for r in rs], [r["gt"] for r in rs])
        metrics["details"] = {
            "deviating_groups": [{"index": r["index"], "ground_truth": r["gt"]} for r in records if r["gt"] != pattern],
            "per_question_type": by_type,
            "n_groups": len(records),
            "n_unparsed": sum(r["n_unparsed"] for r in records),
            "n_failed": sum(r["n_failed"] for r in records),
        }
        return metrics

    def settings(self):
        return {"prompt_template": PROMPT_IDS[self.profile], "max_new_tokens": MAX_NEW_TOKENS, **GREEDY,
                "separator": "" if self.profile == "official" else " ",
                "ground_truth": "answer columns (deviations from Yes/No/No/Yes reported)",
                "default_hub": self.hub["repo"], "split": self.hub["split"]}
