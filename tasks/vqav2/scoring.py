"""VQA accuracy, as scored by the official VQA evaluation (used for VQAv2 and AdVQA).

Profiles
--------
``"official"`` reproduces GT-Vision-Lab/VQA ``vqaEval.py`` (a013f00):

1. ``\\n`` and ``\\t`` become spaces and every GT answer and the prediction is stripped.
2. Normalisation (``process_punctuation`` then ``process_digit_article``) runs only
   when the GT strings are not all identical.  With 10x"yes", the prediction "Yes"
   scores 0.
3. Leave-one-out: for GT answer ``i``, ``m_i`` = how many of the other answers equal
   the prediction; accuracy = mean_i min(1, m_i / 3).  "Other" is decided by
   position.  The official code compares whole answer dicts, whose ``answer_id``
   makes identical strings distinct.  Positions give the same result for plain
   strings too.  Comparing plain strings with ``!=`` would drop every copy of an
   identical answer.

``"lmms"`` reproduces lmms-eval ``vqav2_process_results`` as described in the
benchmark spec (snapshot 75571cf).  It differs in two ways:

* it always normalises, even when all GT answers agree;
* its comma rule is ``(?<=\\d)(\\,)+(?=\\d)`` instead of ``(\\d)(\\,)(\\d)``.  The two
  disagree on runs of commas between digits: "12,,000" becomes "12 000" officially
  and "12000" under lmms.

It uses ``statistics.mean`` for the leave-one-out mean, as lmms-eval does.
Older lmms-eval versions ran the full ``EvalAIAnswerProcessor`` on the prediction
(lower-case, delete ``,`` and ``?``, ``'s`` -> `` 's``) and normalised GT answers
only when they disagreed.  That is not reproduced here.

Official quirks kept on purpose
-------------------------------
* ``process_punctuation`` tests ``p + " "``, ``" " + p`` and the comma rule against
  the ORIGINAL text, never against the partly processed one.  When the comma rule
  matches anywhere, every listed punctuation mark is deleted rather than spaced.
* The period regex ``(?!<=\\d)(\\.)(?!\\d)`` is a negative look-AHEAD for the literal
  ``<=`` followed by a digit.  So in practice it removes any period not followed by
  a digit: "3." becomes "3", "3.5" is kept.
* ``re.UNICODE`` is passed as the positional ``count`` argument of ``re.sub``, so at
  most 32 periods are removed.
* Apostrophes and colons are never touched.  Number words none..ten map to digits
  ("none" -> "0").  Articles are dropped anywhere in the string ("a b" -> "b").
* The contractions map is the official one (see ``contractions.py``).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from .contractions import CONTRACTIONS

PROFILES = ("official", "lmms")

NUMBER_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
    ">", "<", "@", "`", ",", "?", "!",
)
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
# The official call is periodStrip.sub("", text, re.UNICODE): the flag lands in `count`.
PERIOD_STRIP_MAX_REMOVALS = int(re.UNICODE)
COMMA_STRIP = {
    "official": re.compile(r"(\d)(\,)(\d)"),
    "lmms": re.compile(r"(?<=\d)(\,)+(?=\d)"),
}


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")


def clean_whitespace(text: str) -> str:
    """Step 1 of both profiles: newlines and tabs become spaces, then strip."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str, profile: str = "official") -> str:
    """Official ``processPunctuation`` (or lmms ``process_punctuation``)."""
    _check_profile(profile)
    number_with_comma = COMMA_STRIP[profile].search(text) is not None
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or number_with_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, count=PERIOD_STRIP_MAX_REMOVALS)


def process_digit_article(text: str) -> str:
    """Official ``processDigitArticle``: lower-case, number words, articles, contractions."""
    words = []
    for word in text.lower().split():
        word = NUMBER_MAP.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str, profile: str = "official") -> str:
    """``process_punctuation`` followed by ``process_digit_article``."""
    return process_digit_article(process_punctuation(text, profile))


def answer_strings(gt_answers: Sequence[Any]) -> list[str]:
    """GT answers as strings, from VQA answer dicts (key ``answer``) or plain strings."""
    out = []
    for item in gt_answers:
        if isinstance(item, Mapping):
            out.append(item["answer"])
        elif isinstance(item, str):
            out.append(item)
        else:
            raise TypeError(f"GT answer must be a str or a dict with 'answer', got {type(item)!r}")
    return out


def vqa_score_details(prediction: str, gt_answers: Sequence[Any], profile: str = "official") -> dict:
    """Per-question VQA accuracy with its intermediate values.

    Returns ``accuracy`` in [0, 1], ``normalized`` (whether normalisation ran),
    ``prediction`` and ``gt_answers`` as compared, and ``num_matches``.
    """
    _check_profile(profile)
    gts = [clean_whitespace(a) for a in answer_strings(gt_answers)]
    if not gts:
        raise ValueError("VQA accuracy needs at least one GT answer")
    res = clean_whitespace(prediction)
    normalized = profile == "lmms" or len(set(gts)) > 1
    if normalized:
        gts = [normalize_answer(g, profile) for g in gts]
        res = normalize_answer(res, profile)
    matches = [g == res for g in gts]
    total = sum(matches)
    per_answer = [min(1, (total - int(own)) / 3) for own in matches]
    if profile == "lmms":
        accuracy = float(statistics.mean(per_answer))
    else:
        accuracy = float(sum(per_answer)) / len(per_answer)
    return {
        "accuracy": accuracy,
        "normalized": normalized,
        "prediction": res,
        "gt_answers": gts,
        "num_matches": total,
    }


def vqa_accuracy(prediction: str, gt_answers: Sequence[Any], profile: str = "official") -> float:
    """Per-question VQA accuracy in [0, 1] (closed form for 10 answers: min(1, 0.3 k))."""
    return vqa_score_details(prediction, gt_answers, profile)["accuracy"]


def to_percent(fraction: float, ndigits: int = 2) -> float:
    """The official report format: ``round(100 * fraction, 2)``."""
    return round(100 * fraction, ndigits)


def _summary(values: list[float]) -> dict:
    # Same operation order as the official setAccuracy: round(100*sum/len, 2).
    total = float(sum(values))
    return {
        "n": len(values),
        "accuracy": total / len(values),
        "percent": round(100 * total / len(values), 2),
    }


def aggregate_vqa(records: Iterable[Mapping[str, Any]]) -> dict:
    """Dataset accuracy with per-answer-type and per-question-type breakdowns.

    Each record needs ``accuracy`` (the per-question value) and may carry
    ``answer_type`` and ``question_type``; records without a type are left out of
    that breakdown only.  Fractions and ``round(100*x, 2)`` percentages are both
    returned.
    """
    overall: list[float] = []
    by_answer: dict[str, list[float]] = defaultdict(list)
    by_question: dict[str, list[float]] = defaultdict(list)
    for record in records:
        acc = float(record["accuracy"])
        overall.append(acc)
        if record.get("answer_type") is not None:
            by_answer[record["answer_type"]].append(acc)
        if record.get("question_type") is not None:
            by_question[record["question_type"]].append(acc)
    if not overall:
        raise ValueError("no records to aggregate")
    return {
        "overall": _summary(overall),
        "per_answer_type": {k: _summary(v) for k, v in by_answer.items()},
        "per_question_type": {k: _summary(v) for k, v in by_question.items()},
    }
