"""MMBench scoring: rule-based choice extraction and CircularEval.

Profiles
--------
``"official"`` is VLMEvalKit ``vlmeval/utils/matching_util.py`` (e8e78f0), which the
MMBench leaderboard uses.  ``"lmms"`` is lmms-eval ``MMBench_Evaluator``.

``can_infer_option``, official:

* Answers containing "Failed to obtain answer via API" give no result.  The known
  refusal strings give ``"Z"``.
* ``.()[],:;!*#{}`` become spaces, then the text is split on whitespace.  If exactly
  one option letter is a standalone token and its first occurrence is among the
  last 4 tokens (``index > len - 5``), that letter is returned.  With no option
  letter, a standalone ``"Z"`` token gives ``"Z"``.
* Whenever that rule does not return, including when several letters are present,
  ``(?i)(?:correct\\s+)?answer\\s+is\\s+\\**([ABCD])\\**`` is tried.  It is
  case-insensitive for the letter and has no word boundary, so "The answer is a
  dog" gives A.
* VLMEvalKit changes its results when a ``VERBOSE`` environment variable is set to
  anything ("A" with more than 3 tokens then returns nothing).  The environment is
  never read here; the behaviour is that of ``VERBOSE`` unset.

``can_infer_option``, lmms:

* No punctuation replacement and no refusal -> ``"Z"`` rule.  The letters are always
  A-E, whatever options exist.
* A single standalone letter wins, unless "A" is a token of a text with more than 3
  tokens.
* Otherwise the affix pairs ``("", ".")``, ``("", ",")``, ``("", ":")``,
  ``("", ")")``, ``("", ").")``, ``("(", ")")``, ``("(", ").")``, ``(":", "")``,
  ``(":", ",")``, ``(":", ".")``, ``(":", ")")`` and ``(":", ").")`` are tried in turn.
  No "answer is" pattern is used, so "The correct answer is **B**. ..." gives nothing
  and lmms-eval would call its judge.

``can_infer_text`` returns the option whose lower-cased text is a substring of the
lower-cased answer, when exactly one is.  The official version also rejects answers
longer than twice the total option length.  Unlike the originals, the caller's
``choices`` is not lower-cased in place.

For the lmms profile, ``build_choices`` keeps a literal ``"nan"`` option text, as
lmms-eval does, so it takes part in text matching.  The official builder drops
None, float NaN and ``"nan"``; pandas reads those cells as NaN in VLMEvalKit's TSV.

CircularEval: rows are grouped by ``index % 1_000_000``.  A question hits only if
every pass's extracted letter equals that pass's answer.  Category and L2-category
come from the pass-0 row (``index < 1_000_000``).  Groups without a pass-0 row are
counted and skipped, as upstream.  An unparsed pass counts as wrong, with no LLM
judge and no random guess.  ``circular_eval_with_random_fallback`` is the opt-in
stand-in for the upstream "everything failed" branch: VLMEvalKit draws among the
options plus "Z", lmms-eval among the options plus "E".  It reports how often the
draw fired.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping

PROFILES = ("official", "lmms")
CIRCULAR_MOD = 1_000_000

REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
API_FAILURE = "Failed to obtain answer via API"
VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
_OFFICIAL_PUNCT = ".()[],:;!*#{}"
_LMMS_LETTERS = "ABCDE"
_LMMS_AFFIXES = (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"),
                 ("(", ")."), (":", ""), (":", ","), (":", "."), (":", ")"), (":", ")."))

VLMEVALKIT_INSTRUCTION = "Please select the correct answer from the options above. \n"
LMMS_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")


def is_missing(value: Any) -> bool:
    """None, float NaN or the string "nan" (how missing hints and options are stored)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value == "nan"


def build_choices(row: Mapping[str, Any], profile: str = "official") -> dict[str, str]:
    """Letter -> option text for the options present in a row."""
    _check_profile(profile)
    if profile == "official":
        return {c: str(row[c]) for c in string.ascii_uppercase if c in row and not is_missing(row[c])}
    return {c: str(row[c]) for c in "ABCD"
            if c in row and row[c] is not None and not (isinstance(row[c], float) and math.isnan(row[c]))}


# ---------------------------------------------------------------- extraction
def _official_can_infer_option(answer: str, choices: Mapping[str, str]) -> str | None:
    if API_FAILURE in answer:
        return None
    if any(err in answer for err in REFUSALS):
        return "Z"
    answer_mod = answer
    for c in _OFFICIAL_PUNCT:
        answer_mod = answer_mod.replace(c, " ")
    splits = answer_mod.split()
    count = sum(1 for c in choices if c in splits)
    if count == 1:
        for ch in choices:
            if ch in splits and splits.index(ch) > len(splits) - 5:
                return ch
    elif count == 0 and "Z" in splits:
        return "Z"
    match = VERBOSE_ANSWER.search(answer)
    if match and match.group(1).upper() in choices:
        return match.group(1).upper()
    return None


def _lmms_can_infer_option(answer: str) -> str | None:
    if API_FAILURE in answer:
        return None
    splits = answer.split()

    def count(prefix: str = "", suffix: str = "") -> int:
        return sum(1 for c in _LMMS_LETTERS if prefix + c + suffix in splits)

    if count() == 1 and not ("A" in splits and len(splits) > 3):
        for ch in _LMMS_LETTERS:
            if ch in splits:
                return ch
    for prefix, suffix in _LMMS_AFFIXES:
        if count(prefix, suffix) == 1:
            for ch in _LMMS_LETTERS:
                if prefix + ch + suffix in splits:
                    return ch
    return None


def can_infer_option(answer: str, choices: Mapping[str, str], profile: str = "official") -> str | None:
    """Option letter read from the answer text, ``"Z"`` for a refusal, or None."""
    _check_profile(profile)
    answer = str(answer)
    if profile == "official":
        return _official_can_infer_option(answer, choices)
    return _lmms_can_infer_option(answer)


def can_infer_text(answer: str, choices: Mapping[str, str], profile: str = "official") -> str | None:
    """The single option whose text occurs in the answer (case-insensitive), or None."""
    _check_profile(profile)
    answer = str(answer).lower()
    if profile == "official" and len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    cands = [k for k, v in choices.items() if str(v).lower() in answer]
    return cands[0] if len(cands) == 1 else None


def can_infer(answer: str, choices: Mapping[str, str], profile: str = "official") -> str | None:
    """``can_infer_option``, then ``can_infer_text`` (VLMEvalKit returns False where this returns None)."""
    return can_infer_option(answer, choices, profile) or can_infer_text(answer, choices, profile)


def random_fallback_options(choices: Mapping[str, str], profile: str = "official") -> list[str]:
    """Letters the upstream last-resort draw picks from: options + "Z" (official), or A-E whatever the options
    (lmms: `sum(ch in item for ch in "ABCD")` tests a pandas row's column names, and its frame always has the
    columns A-D, so a two-option question draws from A, B, C, D and E too)."""
    _check_profile(profile)
    if profile == "official":
        return [c for c in choices if c != "Z"] + ["Z"]
    return ["A", "B", "C", "D", "E"]


# ---------------------------------------------------------------- CircularEval
def _category(row: Mapping[str, Any], key: str) -> Any:
    if key == "L2-category":
        return row.get("L2-category", row.get("l2-category"))
    return row.get(key)


def _circular_eval(rows: Iterable[Mapping[str, Any]], profile: str,
                   fallback: Callable[[Mapping[str, str]], str] | None) -> dict:
    _check_profile(profile)
    groups: dict[int, list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
    for row in rows:
        idx = int(row["index"])
        groups[idx % CIRCULAR_MOD].append((idx, row))
    questions = []
    counts = {"passes": 0, "unparsed": 0, "refusal": 0, "random_fallback": 0, "orphan_groups": 0}
    for key in sorted(groups):
        passes = sorted(groups[key], key=lambda item: item[0])
        main = next((row for idx, row in passes if idx == key), None)
        if main is None:
            counts["orphan_groups"] += 1
            continue
        details, hit = [], 1
        for idx, row in passes:
            prediction = str(row["prediction"])
            if profile == "lmms":
                prediction = prediction.strip()
            choices = build_choices(row, profile)
            letter = can_infer(prediction, choices, profile)
            counts["passes"] += 1
            fired = False
            if letter is None:
                counts["unparsed"] += 1
                if fallback is not None:
                    letter, fired = fallback(choices), True
                    counts["random_fallback"] += 1
            if letter == "Z":
                counts["refusal"] += 1
            correct = letter is not None and letter == str(row["answer"])
            hit = hit if correct else 0
            details.append({"index": idx, "pred": letter, "answer": row["answer"],
                            "correct": correct, "random_fallback": fired})
        questions.append({"index": key, "hit": hit, "category": _category(main, "category"),
                          "l2_category": _category(main, "L2-category"), "passes": details})
    return _summarise(questions, counts)


def _group_mean(questions: list[dict], key: str) -> dict:
    hits: dict[Any, list[int]] = defaultdict(list)
    for q in questions:
        if q[key] is not None:
            hits[q[key]].append(q["hit"])
    return {k: {"n": len(v), "acc": sum(v) / len(v)} for k, v in hits.items()}


def _summarise(questions: list[dict], counts: dict) -> dict:
    n = len(questions)
    overall = sum(q["hit"] for q in questions) / n if n else None
    return {
        "overall": overall,
        "overall_percent": None if overall is None else overall * 100,
        "n_questions": n,
        "per_category": _group_mean(questions, "category"),
        "per_l2_category": _group_mean(questions, "l2_category"),
        "n_passes": counts["passes"],
        "n_unparsed_passes": counts["unparsed"],
        "n_refusal_passes": counts["refusal"],
        "n_random_fallback": counts["random_fallback"],
        "n_orphan_groups": counts["orphan_groups"],
        "questions": questions,
    }


def circular_eval(rows: Iterable[Mapping[str, Any]], profile: str = "official") -> dict:
    """CircularEval over prediction rows (``index``, ``prediction``, ``answer``, options A.., categories).

    Unparsed passes count as wrong.  Returns the overall fraction and percentage,
    per-category and per-L2-category scores, the counts of unparsed and refusal
    passes, and per-question details.
    """
    return _circular_eval(rows, profile, None)


def circular_eval_with_random_fallback(rows: Iterable[Mapping[str, Any]], rng: random.Random,
                                       profile: str = "official") -> dict:
    """Opt-in: like ``circular_eval``, but unparsed passes get the upstream random letter.

    ``n_random_fallback`` reports how often the draw fired.
    """
    return _circular_eval(rows, profile, lambda choices: rng.choice(random_fallback_options(choices, profile)))


# ---------------------------------------------------------------- prompts
def build_prompt_vlmevalkit(row: Mapping[str, Any]) -> str:
    """VLMEvalKit MCQ prompt: optional ``Hint:``, ``Question:``, ``Options:``, instruction."""
    options = build_choices(row, "official")
    hint = row.get("hint")
    prompt = "" if is_missing(hint) else f"Hint: {hint}\n"
    prompt += f"Question: {row['question']}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        prompt += VLMEVALKIT_INSTRUCTION
    return prompt


def build_prompt_lmms(row: Mapping[str, Any]) -> str:
    """lmms-eval ``mmbench_en_dev`` prompt (hint, question, options, instruction)."""
    options = {c: row[c] for c in "ABCDE" if c in row and row[c] and not is_missing(row[c])}
    options_prompt = "There are several options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
    options_prompt = options_prompt.rstrip("\n")
    hint = row.get("hint")
    query = f"{row['question']} {options_prompt}" if is_missing(hint) else f"{hint} {row['question']} {options_prompt}"
    return f"{query}\n\n{LMMS_INSTRUCTION}"
