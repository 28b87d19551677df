"""Reading a WISE judge's reply, exactly as the official scripts read it (PKU-YuanGroup/WISE@eb51174).

* legacy (`WISE_legacy/gpt_eval.py`, `extract_scores`): every `Consistency|Realism|Aesthetic Quality: d` match,
  case-insensitive, later matches overwriting earlier ones; only when there is no named match at all, the bare
  score lines `re.findall(r"(?m)^\\s*([0-2])\\s*$", text)`, of which three or more are needed and the first three
  used. `(?m)` breaks lines at "\\n" only, so "2\\r1\\r0" holds no bare line ("\\r" still counts as the \\s around a
  digit: "2\\r\\n1\\r\\n0" parses).
* verified (`vllm_eval.py`): `<think>...</think>` followed by whitespace is removed (non-greedy, across lines,
  case-sensitive), then any remaining `</think>` followed by whitespace, then the text is stripped; the first
  `Score: 0/1` match counts, else exactly one bare 0/1 line.

Both official loops ask the judge again when a reply yields no score (see `ParsedJudgement.reask`). One
deliberate difference: a legacy score outside 0-2 (`(\\d)` accepts any digit) is a parse failure here, where the
official code averages it into WiScore; the official loop has accepted that reply, so it is not asked again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

LEGACY_KEYS = ("consistency", "realism", "aesthetic_quality")

# The official class is `[::]`: two ASCII colons, so a full-width colon does not match.
_LEGACY_RE = re.compile(r"\*{0,2}(Consistency|Realism|Aesthetic Quality)\*{0,2}\s*[::]?\s*(\d)", re.IGNORECASE)
_LEGACY_BARE_RE = re.compile(r"(?m)^\s*([0-2])\s*$")
_VERIFIED_RE = re.compile(r"\*{0,2}Score\*{0,2}\s*[::]?\s*([01])\b", re.IGNORECASE)
_VERIFIED_BARE_RE = re.compile(r"(?m)^\s*([01])\s*$")
_THINK_BLOCK_RE = re.compile(r"<think>.*?</think>\s*", re.DOTALL)
_THINK_CLOSE_RE = re.compile(r"</think>\s*")


@dataclass(frozen=True)
class ParsedJudgement:
    scores: Optional[dict[str, int]]  # legacy: consistency/realism/aesthetic_quality; verified: score
    error: Optional[str] = None
    method: Optional[str] = None  # "named" (regex) or "bare" (number-only lines fallback)
    #: whether the official loop would ask the judge again: it does when the reply yields no complete score
    reask: bool = False

    @property
    def ok(self) -> bool:
        return self.scores is not None


def parse_legacy(text: str) -> ParsedJudgement:
    """Three 0-2 scores from a legacy judge answer (module docstring: the official rules and our one deviation)."""
    if not isinstance(text, str):
        return ParsedJudgement(None, "judge answer is not text", reask=True)
    found: dict[str, int] = {}
    for name, value in _LEGACY_RE.findall(text):
        found[name.lower().replace(" ", "_")] = int(value)  # later lines overwrite, as in the official dict
    method = "named"
    if not found:                   # a partial named match rules the fallback out, as upstream
        bare = _LEGACY_BARE_RE.findall(text)
        if len(bare) < 3:
            return ParsedJudgement(None, "no score lines found", reask=True)
        found, method = {k: int(v) for k, v in zip(LEGACY_KEYS, bare)}, "bare"   # the first three
    missing = [k for k in LEGACY_KEYS if k not in found]
    if missing:
        return ParsedJudgement(None, f"missing {', '.join(missing)}", method, reask=True)
    bad = {k: v for k, v in found.items() if not 0 <= v <= 2}
    if bad:
        return ParsedJudgement(None, "out of range 0-2: " + ", ".join(f"{k}={v}" for k, v in bad.items()), method)
    return ParsedJudgement({k: found[k] for k in LEGACY_KEYS}, None, method)


def strip_think(text: str) -> str:
    """vllm_eval.py's clean-up: text before a stray `</think>` is kept, and `<THINK>` is not a think tag."""
    return _THINK_CLOSE_RE.sub("", _THINK_BLOCK_RE.sub("", text)).strip()


def parse_verified(text: str) -> ParsedJudgement:
    """Binary WISE_Verified score: the first `Score: 0/1` match, else exactly one bare 0/1 line."""
    if not isinstance(text, str):
        return ParsedJudgement(None, "judge answer is not text", reask=True)
    text = strip_think(text)
    m = _VERIFIED_RE.search(text)
    if m:
        return ParsedJudgement({"score": int(m.group(1))}, None, "named")
    bare = _VERIFIED_BARE_RE.findall(text)
    if len(bare) == 1:
        return ParsedJudgement({"score": int(bare[0])}, None, "bare")
    return ParsedJudgement(None, "no 'Score: 0/1' found" if not bare else f"{len(bare)} bare 0/1 lines", reask=True)
