"""MMMU scoring: the official parsers of MMMU-Benchmark/MMMU ``eval_utils.py``.

Profiles
--------
``"official"``: the MMMU repository.  ``"lmms"``: lmms-eval ``mmmu_val`` (75571cf).
The profiles differ deliberately in the following:

* Multiple-choice parsing, step 3.  The official parser looks for ``" L "``.  lmms
  looks for ``"L "`` with no leading space, so "The answer is DNA." parses as A.
  When that finds nothing, lmms adds a step for ``"L."``.
* Prompts.  The official options are ``"(A) o1\\n"``, followed by a blank line and the
  instruction.  lmms writes ``"A. o1"`` and puts a blank line before the open-answer
  instruction as well.
* Report rounding.  Official rounds to 3 decimals, lmms to 5 (``ROUND_DIGITS``).  The
  functions here return unrounded fractions.

An lmms-eval bug that is NOT reproduced: at 75571cf, ``mmmu_process_results`` stores
``str(parsed[0])`` for open questions.  ``evaluate_mmmu`` then walks that string
character by character, so every open question scores 0 (lmms-eval issue #1436,
fixed by PR #1471).  Both profiles score open answers with the official
``parse_open_response`` / ``eval_open``.

Official quirks reproduced
--------------------------
* MC step 1 calls ``strip(c)`` for each of ``, . ! ? ; : '`` in turn, so only the ends
  are stripped.  Step 4, the content match, runs only when the padded response has more
  than 5 words.  When several candidates match, the one found LAST wins.  Ties go to the
  first candidate (``np.argmax``).  In the lmms non-bracket branch the position is
  still taken from ``rfind(" L ")``, which may be -1.
* The random fallback draws from an explicit ``rng`` (the official module seeds a
  global ``random`` with 42 at import; ``make_official_rng`` builds that state), and
  the parse reports whether it fired.
* ``get_key_subresponses`` lower-cases before splitting on ``\\.\\s(?=[A-Z])|\\n``, so in
  practice it splits only on newlines.  ``"="`` is an indicator only in the last
  sub-response.  An empty tail after an indicator is falsy, so the next indicator's
  tail replaces it whatever its length; an empty tail that comes last drops the
  sub-response.  With no key tail the fallback is the stripped, lower-cased response.
* ``extract_numbers``: numbers glued to a unit are not extracted ("10kg").  "12,34"
  gives 1234.0 (whole string) and 34.0.  "2.5e3m" yields a stray 2.
  ``normalize_str`` uses ``float()``, so "1_000", "inf" and "nan" are numbers.  A
  1-character string becomes ``[" c", "c "]``.
* ``eval_open``: a string pred is correct if it CONTAINS a normalised string gold.  A
  float pred is correct if it EQUALS a float gold (both rounded to 2 decimals).

One deliberate difference from the official code: ``parse_open_response`` removes
duplicates keeping the first occurrence, where the official code uses ``list(set())``.
Membership, and so correctness, is the same; the order becomes reproducible.
"""

from __future__ import annotations

import ast
import random
import re
from collections import defaultdict
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

PROFILES = ("official", "lmms")
ROUND_DIGITS = {"official": 3, "lmms": 5}
OFFICIAL_SEED = 42

MULTI_CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."

DOMAIN_CAT2SUB_CAT: dict[str, list[str]] = {
    "Art and Design": ["Art", "Art_Theory", "Design", "Music"],
    "Business": ["Accounting", "Economics", "Finance", "Manage", "Marketing"],
    "Science": ["Biology", "Chemistry", "Geography", "Math", "Physics"],
    "Health and Medicine": [
        "Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
        "Pharmacy", "Public_Health",
    ],
    "Humanities and Social Science": ["History", "Literature", "Sociology", "Psychology"],
    "Tech and Engineering": [
        "Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
        "Energy_and_Power", "Materials", "Mechanical_Engineering",
    ],
}
SUBJECT_TO_DISCIPLINE: dict[str, str] = {
    subject: discipline for discipline, subjects in DOMAIN_CAT2SUB_CAT.items() for subject in subjects
}

_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL_TAILS = (":", ",", ".", "!", "?", ";", ":", "'")
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")


# ---------------------------------------------------------------- options and prompts
def parse_options(options: str | Sequence[str]) -> list[str]:
    """Options as a list.  The HF column is a string holding a Python list."""
    if isinstance(options, str):
        options = ast.literal_eval(options)
    return [str(o) for o in options]


def get_multi_choice_info(options: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``(index2ans, all_choices)`` with letters A, B, C, ... as in the official code."""
    all_choices = [chr(ord("A") + i) for i in range(len(options))]
    return dict(zip(all_choices, options)), all_choices


def build_prompt(question: str, options: str | Sequence[str], question_type: str,
                 profile: str = "official") -> str:
    """The text prompt; ``<image k>`` placeholders are left in ``question`` as is."""
    _check_profile(profile)
    if question_type == "multiple-choice":
        opts = parse_options(options)
        letters = [chr(ord("A") + i) for i in range(len(opts))]
        if profile == "official":
            example = "".join(f"({L}) {o}\n" for L, o in zip(letters, opts))
            return f"{question}\n{example}\n{MULTI_CHOICE_INSTRUCTION}"
        listed = "\n".join(f"{L}. {o}" for L, o in zip(letters, opts))
        return f"{question}\n{listed}\n\n{MULTI_CHOICE_INSTRUCTION}"
    if profile == "official":
        return f"{question}\n{OPEN_INSTRUCTION}"
    return f"{question}\n\n{OPEN_INSTRUCTION}"


# ---------------------------------------------------------------- multiple choice
class MCParse(NamedTuple):
    choice: str | None
    random_fallback: bool


def make_official_rng() -> random.Random:
    """The generator state the official module has right after ``random.seed(42)``."""
    return random.Random(OFFICIAL_SEED)


def parse_multi_choice_response(response: str, all_choices: Sequence[str],
                                index2ans: Mapping[str, str], rng: random.Random | None,
                                profile: str = "official") -> MCParse:
    """Official ``parse_multi_choice_response`` (or the lmms variant).

    When no candidate is found the letter is drawn with ``rng.choice(all_choices)``
    and ``random_fallback`` is True.  With ``rng=None`` nothing is drawn and the
    choice is None, so an unparsed answer can be counted instead of guessed.
    """
    _check_profile(profile)
    for char in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(char)
    response = " " + response + " "

    index_ans = True
    ans_with_brack = False
    candidates = [c for c in all_choices if f"({c})" in response]
    if candidates:
        ans_with_brack = True
    if not candidates:
        pattern = " {} " if profile == "official" else "{} "
        candidates = [c for c in all_choices if pattern.format(c) in response]
    if not candidates and profile == "lmms":
        candidates = [c for c in all_choices if f"{c}." in response]
    if not candidates and len(response.split()) > 5:
        candidates = [k for k, ans in index2ans.items() if ans.lower() in response.lower()]
        index_ans = not candidates

    if not candidates:
        if rng is None:
            return MCParse(None, True)
        return MCParse(rng.choice(list(all_choices)), True)
    if len(candidates) == 1:
        return MCParse(candidates[0], False)
    if index_ans and ans_with_brack:
        starts = [response.rfind(f"({c})") for c in candidates]
    elif index_ans:
        starts = [response.rfind(f" {c} ") for c in candidates]
    else:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    best = max(range(len(starts)), key=starts.__getitem__)  # first maximum, like np.argmax
    return MCParse(candidates[best], False)


def eval_multi_choice(gold: str | Sequence[str], pred: str | None) -> bool:
    """Official: exact equality, or membership when the gold is a list."""
    if isinstance(gold, list):
        return pred in gold
    return gold == pred


# ---------------------------------------------------------------- open answers
def check_is_number(string: str) -> bool:
    try:
        float(string.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_str(string: str) -> list[str | float]:
    """Official ``normalize_str``: a rounded float, a lower-cased string, or two padded variants."""
    string = string.strip()
    if check_is_number(string):
        return [round(float(string.replace(",", "")), 2)]
    string = string.lower()
    if len(string) == 1:
        return [" " + string, string + " "]
    return [string]


def extract_numbers(string: str) -> list[str]:
    """Official ``extract_numbers``: comma-grouped, then scientific, then simple numbers."""
    return (_NUMBER_WITH_COMMAS.findall(string) + _NUMBER_SCIENTIFIC.findall(string)
            + _NUMBER_SIMPLE.findall(string))


def get_key_subresponses(response: str) -> list[str]:
    """Official inner ``get_key_subresponses`` of ``parse_open_response``."""
    response = response.strip().strip(".").lower()
    sub_responses = re.split(r"\.\s(?=[A-Z])|\n", response)
    indicators = list(_KEY_INDICATORS)
    key_responses = []
    for index, resp in enumerate(sub_responses):
        if index == len(sub_responses) - 1:
            indicators.append("=")
        shortest = None
        for indicator in indicators:
            if indicator in resp:
                tail = resp.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL_TAILS:
            key_responses.append(shortest)
    return key_responses or [response]


def parse_open_response(response: str) -> list[str | float]:
    """Official ``parse_open_response``: key tails plus the numbers in them, normalised."""
    key_responses = get_key_subresponses(response)
    pred_list: list[str] = list(key_responses)
    for resp in key_responses:
        pred_list.extend(extract_numbers(resp))
    normalized: list[str | float] = []
    for pred in pred_list:
        normalized.extend(normalize_str(pred))
    return list(dict.fromkeys(normalized))


def eval_open(gold: str | Sequence[str], preds: Sequence[str | float]) -> bool:
    """Official ``eval_open``: substring match for strings, equality for floats."""
    if isinstance(gold, list):
        norm_answers: list[str | float] = []
        for answer in gold:
            norm_answers.extend(normalize_str(answer))
    else:
        norm_answers = normalize_str(gold)
    for pred in preds:
        if isinstance(pred, str):
            if any(isinstance(a, str) and a in pred for a in norm_answers):
                return True
        elif pred in norm_answers:
            return True
    return False


def parse_gold(answer: Any) -> str | list[str]:
    """Gold answer; a string holding a Python list ("['24/7', '3.429']") becomes that list."""
    if isinstance(answer, str) and answer.lstrip().startswith("["):
        try:
            value = ast.literal_eval(answer.strip())
        except (ValueError, SyntaxError):
            return answer
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return answer
    if isinstance(answer, (list, tuple)):
        return [str(v) for v in answer]
    return answer


# ---------------------------------------------------------------- one sample
def score_sample(response: str, question_type: str, options: str | Sequence[str], answer: Any,
                 rng: random.Random | None, profile: str = "official") -> dict:
    """Parse and judge one response.  Returns ``parsed_pred``, ``correct``, ``random_fallback``."""
    gold = parse_gold(answer)
    if question_type == "multiple-choice":
        index2ans, all_choices = get_multi_choice_info(parse_options(options))
        parsed = parse_multi_choice_response(response, all_choices, index2ans, rng, profile)
        return {"parsed_pred": parsed.choice, "correct": eval_multi_choice(gold, parsed.choice),
                "random_fallback": parsed.random_fallback}
    _check_profile(profile)
    preds = parse_open_response(response)
    return {"parsed_pred": preds, "correct": eval_open(gold, preds), "random_fallback": False}


def score_answer_key(prediction: str, question_type: str, answer: Any) -> dict:
    """main_eval_only.py's scoring against the answer key (answer_dict_val.json), which holds no options: a
    multiple-choice prediction is the letter the model's run has already parsed and is compared as it is; an open
    one goes through parse_open_response."""
    gold = parse_gold(answer)
    if question_type == "multiple-choice":
        return {"parsed_pred": prediction, "correct": eval_multi_choice(gold, prediction), "random_fallback": False}
    preds = parse_open_response(prediction)
    return {"parsed_pred": preds, "correct": eval_open(gold, preds), "random_fallback": False}


# ---------------------------------------------------------------- aggregation
def subject_from_id(sample_id: str) -> str:
    """``validation_Art_Theory_12`` -> ``Art_Theory``."""
    split = sample_id.split("_")[0]
    match = re.match(rf"^{re.escape(split)}_(.+?)_\d+$", sample_id)
    if not match:
        raise ValueError(f"cannot read a subject from id {sample_id!r}")
    return match.group(1)


def instance_weighted_accuracy(results: Mapping[str, Mapping[str, float]]) -> float | None:
    """Official ``calculate_ins_level_acc``: sum(acc*num) / sum(num); None when empty."""
    total = sum(r["num"] for r in results.values())
    if total == 0:
        return None
    return sum(r["acc"] * r["num"] for r in results.values()) / total


def aggregate(samples: Iterable[Mapping[str, Any]]) -> dict:
    """Per-subject, per-discipline and overall accuracy (instance-weighted, unrounded).

    Each sample needs ``correct`` and either ``subject`` or an MMMU ``id``.
    Disciplines without samples are omitted.  Subjects outside the 30 official
    ones count towards the overall score only.
    """
    correct: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for s in samples:
        subject = s.get("subject") or subject_from_id(s["id"])
        count[subject] += 1
        correct[subject] += bool(s["correct"])
    subjects = {k: {"num": n, "acc": correct[k] / n} for k, n in count.items()}
    disciplines = {}
    for discipline, members in DOMAIN_CAT2SUB_CAT.items():
        present = {k: subjects[k] for k in members if k in subjects}
        if present:
            disciplines[discipline] = {"num": sum(r["num"] for r in present.values()),
                                       "acc": instance_weighted_accuracy(present)}
    return {
        "subjects": subjects,
        "disciplines": disciplines,
        "overall": {"num": sum(count.values()), "acc": instance_weighted_accuracy(subjects)},
    }
