"""NaturalBench scoring: the official ``naturalbench_vqa.py`` (Baiqi-Li/NaturalBench).

lmms-eval and VLMEvalKit copy the official extraction and group scores.  The
profiles therefore differ only in the prompt.  Official appends the suffix with no
separator (``question + suffix``).  lmms and VLMEvalKit put a space between them.

Extraction (``extract_answer``) finds the first case-insensitive whole-word match
(``\\bword\\b``) of "yes" and of "no" (yes_no), or of "A" and of "B"
(multiple_choice).  Whichever comes first wins.  Yes/A is 1, no/B is 0, and
neither is -1.  The article in "It is a B" therefore parses as option A.  -1 never
equals a ground truth, so it is always wrong.

Group scores per group of four answers r_ij (question i on image j) are counted as
follows.  Acc counts the correct answers, out of 4N.  Q-Acc counts the questions
answered correctly on both images, out of 2N.  I-Acc counts the images whose two
questions are both correct, out of 2N.  G-Acc counts the groups with all four
correct, out of N.

Deliberate difference: every upstream implementation scores against the fixed
pattern q0_i0 = 1, q0_i1 = 0, q1_i0 = 0, q1_i1 = 1 (Yes/No/No/Yes, A/B/B/A) and never
reads the answer columns.  Here the ground truth comes from the
``Image_k_Question_j`` columns (``group_ground_truth``).  On groups that follow the
pattern the scores are identical; ``check_answer_pattern`` lists the groups that do
not.  Passing ``gts=None`` to ``group_scores`` uses the upstream pattern.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

PROFILES = ("official", "lmms")
QUESTION_TYPES = ("yes_no", "multiple_choice")
SUFFIX_FOR_VQA = {
    "yes_no": "Please answer Yes or No.",
    "multiple_choice": "Please output the letter corresponding to the correct option.",
}
# Flattening order used by every implementation: (q0,i0), (q0,i1), (q1,i0), (q1,i1).
SAMPLE_ORDER = ((0, 0), (0, 1), (1, 0), (1, 1))
OFFICIAL_PATTERN = (1, 0, 0, 1)
_WORDS = {"yes_no": ("yes", "no"), "multiple_choice": ("A", "B")}


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")


def _check_type(question_type: str) -> None:
    if question_type not in QUESTION_TYPES:
        raise ValueError("Task type not supported. Must be 'yes_no' or 'multiple_choice'.")


def _word_position(text: str, word: str) -> int:
    match = re.search(r"\b" + re.escape(word) + r"\b", text, re.IGNORECASE)
    return match.start() if match else -1


def extract_answer(output: str, question_type: str = "yes_no") -> int:
    """Official ``extract_answer``: 1 (yes/A), 0 (no/B) or -1 (neither found)."""
    _check_type(question_type)
    positive, negative = _WORDS[question_type]
    pos_1 = _word_position(output, positive)
    pos_0 = _word_position(output, negative)
    if pos_1 == -1 and pos_0 == -1:
        return -1
    if pos_1 != -1 and pos_0 != -1:
        return 1 if pos_1 < pos_0 else 0
    return 0 if pos_1 == -1 else 1


def build_prompt(question: str, question_type: str, profile: str = "official") -> str:
    """Question plus the type's suffix: no separator (official) or one space (lmms)."""
    _check_profile(profile)
    _check_type(question_type)
    separator = "" if profile == "official" else " "
    return question + separator + SUFFIX_FOR_VQA[question_type]


def encode_answer(answer: str, question_type: str) -> int:
    """Ground-truth string ("Yes"/"No", "A"/"B") as 1/0; ValueError when it is neither."""
    _check_type(question_type)
    text = str(answer).strip().rstrip(".").strip().lower()
    positive, negative = (w.lower() for w in _WORDS[question_type])
    if text == positive:
        return 1
    if text == negative:
        return 0
    value = extract_answer(str(answer), question_type)
    if value == -1:
        raise ValueError(f"cannot read a {question_type} ground truth from {answer!r}")
    return value


def group_ground_truth(row: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Encoded GT of one dataset row, in ``SAMPLE_ORDER``, read from ``Image_j_Question_i``."""
    qtype = row["Question_Type"]
    return tuple(encode_answer(row[f"Image_{j}_Question_{i}"], qtype) for i, j in SAMPLE_ORDER)


def expand_group(row: Mapping[str, Any], profile: str = "official") -> list[dict]:
    """The four VQA samples of one row, in ``SAMPLE_ORDER`` (images referenced by column name)."""
    qtype = row["Question_Type"]
    return [
        {
            "group_index": row.get("Index"),
            "question_index": i,
            "image_index": j,
            "image_key": f"Image_{j}",
            "question": row[f"Question_{i}"],
            "prompt": build_prompt(row[f"Question_{i}"], qtype, profile),
            "answer": row[f"Image_{j}_Question_{i}"],
            "question_type": qtype,
        }
        for i, j in SAMPLE_ORDER
    ]


def check_answer_pattern(rows: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Groups whose answer columns differ from Yes/No/No/Yes (A/B/B/A), or cannot be read."""
    deviations = []
    for position, row in enumerate(rows):
        index = row.get("Index", position)
        try:
            gt = group_ground_truth(row)
        except ValueError as err:
            deviations.append({"index": index, "ground_truth": None, "error": str(err)})
            continue
        if gt != OFFICIAL_PATTERN:
            deviations.append({"index": index, "ground_truth": gt, "error": None})
    return deviations


def _group_counts(pred: Sequence[int], gt: Sequence[int]) -> tuple[int, int, int, int]:
    c00, c01, c10, c11 = (p == g for p, g in zip(pred, gt))
    question = int(c00 and c01) + int(c10 and c11)
    image = int(c00 and c10) + int(c01 and c11)
    return sum((c00, c01, c10, c11)), question, image, int(question == 2 and image == 2)


def group_scores(preds: Sequence[Sequence[int]],
                 gts: Sequence[Sequence[int]] | None = None) -> dict:
    """Acc, Q_Acc, I_Acc and G_Acc over groups of four extracted values (``SAMPLE_ORDER``).

    ``gts`` gives each group's encoded ground truth; None means the upstream
    pattern (1, 0, 0, 1) for every group.
    """
    if gts is None:
        gts = [OFFICIAL_PATTERN] * len(preds)
    if len(gts) != len(preds):
        raise ValueError(f"{len(preds)} prediction groups for {len(gts)} ground-truth groups")
    if not preds:
        raise ValueError("no groups to score")
    acc = q_acc = i_acc = g_acc = 0
    for pred, gt in zip(preds, gts):
        if len(pred) != 4 or len(gt) != 4:
            raise ValueError("each group needs exactly four values")
        a, q, i, g = _group_counts(pred, gt)
        acc, q_acc, i_acc, g_acc = acc + a, q_acc + q, i_acc + i, g_acc + g
    n = len(preds)
    return {
        "Acc": acc / (4 * n),
        "Q_Acc": q_acc / (2 * n),
        "I_Acc": i_acc / (2 * n),
        "G_Acc": g_acc / n,
        "num_groups": n,
        "num_unparsed": sum(1 for pred in preds for v in pred if v == -1),
    }


def score_groups(rows: Sequence[Mapping[str, Any]], outputs: Sequence[str]) -> dict:
    """Extract the ``4 * len(rows)`` outputs (in ``SAMPLE_ORDER``) and score against the answer columns."""
    if len(outputs) != 4 * len(rows):
        raise ValueError(f"expected {4 * len(rows)} outputs, got {len(outputs)}")
    preds = [
        [extract_answer(outputs[4 * g + k], row["Question_Type"]) for k in range(4)]
        for g, row in enumerate(rows)
    ]
    result = group_scores(preds, [group_ground_truth(row) for row in rows])
    result["extracted"] = preds
    return result
