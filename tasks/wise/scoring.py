"""WISE scoring: WiScore, category means and Overall, prompt files and the judge prompt (replies are read by
parsing.py).

Sources: PKU-YuanGroup/WISE@eb51174 — legacy (`WISE_legacy/gpt_eval.py` + `Calculate.py`) and
WISE_Verified (`vllm_eval.py` + `calculate_verified.py`). The judge prompt text is not shipped here:
`judge_prompt` reads it from the pinned upstream file placed in a cache directory, or from a user file.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

PROTOCOLS = ("legacy", "verified")
CATEGORIES = ("CULTURE", "TIME", "SPACE", "BIOLOGY", "PHYSICS", "CHEMISTRY")
ID_RANGES = {
    "legacy": {"CULTURE": (1, 400), "TIME": (401, 567), "SPACE": (568, 700),
               "BIOLOGY": (701, 800), "PHYSICS": (801, 900), "CHEMISTRY": (901, 1000)},
    "verified": {"CULTURE": (1, 400), "TIME": (401, 520), "SPACE": (521, 640),
                 "BIOLOGY": (641, 760), "PHYSICS": (761, 880), "CHEMISTRY": (881, 1000)},
}
WEIGHTS = {
    "legacy": {"CULTURE": 0.4, "TIME": 0.167, "SPACE": 0.133, "BIOLOGY": 0.1, "PHYSICS": 0.1, "CHEMISTRY": 0.1},
    "verified": {"CULTURE": 0.40, "TIME": 0.12, "SPACE": 0.12, "BIOLOGY": 0.12, "PHYSICS": 0.12, "CHEMISTRY": 0.12},
}
# The data files' own Category strings ("Cultural knowledge", "time", "Physical Knowledge", ...), lower-cased.
CATEGORY_ALIASES = {"cultural knowledge": "CULTURE", "culture": "CULTURE", "time": "TIME", "space": "SPACE",
                    "biology": "BIOLOGY", "physical knowledge": "PHYSICS", "physics": "PHYSICS",
                    "chemistry": "CHEMISTRY"}
JUDGE_SETTINGS = {
    "legacy": {"model": "gpt-4o-2024-05-13", "temperature": 0.0, "max_tokens": 2000, "extra_body": {}},
    "verified": {"model": "Qwen3.5-35B-A3B", "temperature": 0.0, "max_tokens": 500,
                 "extra_body": {"chat_template_kwargs": {"enable_thinking": False}}},
}
UPSTREAM_REPO, UPSTREAM_COMMIT = "PKU-YuanGroup/WISE", "eb51174"
UPSTREAM_FILES = {"legacy": "WISE_legacy/gpt_eval.py", "verified": "vllm_eval.py"}
ROW_FIELDS = ("Prompt", "Explanation", "Category", "Subcategory", "prompt_id", "Hint")
# how many times the judge is asked about one image before the prompt counts as a failure: both official
# loops (gpt_eval.py, vllm_eval.py) make up to 3 attempts, re-asking when a reply yields no score
JUDGE_ATTEMPTS = {"legacy": 3, "verified": 3}
# whether the official calculator still computes Overall when some expected prompts have no score: Calculate.py
# refuses; calculate_verified.py warns, lists the missing ids and aggregates the prompts present (refusing only
# when a whole category is empty)
PARTIAL_OVERALL = {"legacy": False, "verified": True}


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown WISE protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return protocol


def wiscore(consistency: float, realism: float, aesthetic_quality: float) -> float:
    """(0.7 C + 0.2 R + 0.1 A) / 2, in [0, 1]; same operation order as the official code."""
    return (0.7 * consistency + 0.2 * realism + 0.1 * aesthetic_quality) / 2


def category_for_id(prompt_id: int, protocol: str = "legacy") -> Optional[str]:
    """Category of a standard prompt id, or None outside 1-1000 (the official scripts ignore those ids)."""
    for cat, (lo, hi) in ID_RANGES[_check_protocol(protocol)].items():
        if lo <= prompt_id <= hi:
            return cat
    return None


def normalise_category(name: str) -> str:
    key = str(name).strip().lower()
    if name in CATEGORIES:
        return name
    if key not in CATEGORY_ALIASES:
        raise ValueError(f"unknown WISE category {name!r}")
    return CATEGORY_ALIASES[key]


def categories_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """prompt_id -> category taken from each row's Category field (for non-standard id layouts)."""
    return {int(r["prompt_id"]): normalise_category(r["Category"]) for r in rows}


def weighted_overall(category_scores: Mapping[str, float], protocol: str = "legacy",
                     renormalise: bool = False) -> Optional[float]:
    """Official weighted Overall; None if a category is missing unless `renormalise` (lmms-eval: divide by
    the summed weights of the categories present)."""
    w = WEIGHTS[_check_protocol(protocol)]
    present = [c for c in CATEGORIES if c in category_scores]
    if not present:
        return None
    if len(present) < len(CATEGORIES):
        if not renormalise:
            return None
        return sum(w[c] * category_scores[c] for c in present) / sum(w[c] for c in present)
    s = category_scores
    if protocol == "verified":       # calculate_verified.py's term order: the sum's last bit can change the rounding
        return (0.4 * s["CULTURE"] + 0.12 * s["TIME"] + 0.12 * s["SPACE"]
                + 0.12 * s["BIOLOGY"] + 0.12 * s["PHYSICS"] + 0.12 * s["CHEMISTRY"])
    return (0.4 * s["CULTURE"] + 0.167 * s["TIME"] + 0.133 * s["SPACE"]
            + 0.1 * s["BIOLOGY"] + 0.1 * s["PHYSICS"] + 0.1 * s["CHEMISTRY"])


@dataclass
class WiseOverall:
    value: Optional[float]  # None when refused; see missing_* for why
    category_scores: dict[str, float]
    category_counts: dict[str, int]
    missing_prompt_ids: list[int] = field(default_factory=list)  # expected ids with no usable score (zeroed
    # when missing_as_zero)
    missing_categories: list[str] = field(default_factory=list)
    ignored_prompt_ids: list[int] = field(default_factory=list)  # scored ids with no category
    protocol: str = "legacy"
    renormalised: bool = False
    missing_as_zero: bool = False


def overall(scores: Mapping[int, Optional[float]], protocol: str = "legacy", *,
            category_of: Optional[Mapping[int, str]] = None, renormalise: bool = False,
            missing_as_zero: bool = False) -> WiseOverall:
    """Category means and Overall from per-prompt scores (WiScore or 0/1; None = failed/skipped).

    Like the official scripts, Overall is refused (value None) when a whole category is missing, and under
    legacy (Calculate.py) also when any expected prompt is missing; calculate_verified.py aggregates the prompts
    present and lists the missing ones (`missing_prompt_ids`). Opt-ins reproduce lmms-eval instead:
    `missing_as_zero` scores missing prompts 0 and `renormalise` divides by the weights of the categories present.
    Expected ids are the protocol's 1-1000 unless `category_of` (prompt_id -> category, e.g. from
    `categories_from_rows`) describes the dataset.
    """
    _check_protocol(protocol)
    if category_of is not None:
        cat_of = {int(k): normalise_category(v) for k, v in category_of.items()}
    else:
        cat_of = {i: category_for_id(i, protocol) for i in range(1, 1001)}
    usable: dict[int, float] = {}
    ignored = []
    for pid, value in scores.items():
        pid = int(pid)
        if pid not in cat_of:
            ignored.append(pid)
        elif value is not None:
            usable[pid] = float(value)
    missing = sorted(pid for pid in cat_of if pid not in usable)
    if missing_as_zero:
        usable.update({pid: 0.0 for pid in missing})
    sums: dict[str, list[float]] = {}
    for pid in sorted(usable):
        sums.setdefault(cat_of[pid], []).append(usable[pid])
    cat_scores = {c: sum(sums[c]) / len(sums[c]) for c in CATEGORIES if c in sums}
    missing_cats = [c for c in CATEGORIES if c not in cat_scores]
    if renormalise:
        value = weighted_overall(cat_scores, protocol, renormalise=True)
    elif (missing and not missing_as_zero and not PARTIAL_OVERALL[protocol]) or missing_cats:
        value = None
    else:
        value = weighted_overall(cat_scores, protocol)
    return WiseOverall(value, cat_scores, {c: len(sums[c]) for c in cat_scores}, missing, missing_cats,
                       sorted(ignored), protocol, renormalise, missing_as_zero)


def validate_prompt_rows(rows: Any, source: str = "<rows>") -> list[dict]:
    """Check WISE prompt rows (legacy/verified JSON or HF schema); returns them sorted by prompt_id."""
    if not isinstance(rows, list):
        raise ValueError(f"{source}: expected a list of prompt objects")
    seen: dict[int, int] = {}
    for i, row in enumerate(rows):
        where = f"{source}: item {i}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: not an object")
        for key in ROW_FIELDS[:4]:
            if not isinstance(row.get(key), str):
                raise ValueError(f"{where}: field {key!r} missing or not text")
        pid = row.get("prompt_id")
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise ValueError(f"{where}: prompt_id missing or not an integer")
        if pid in seen:
            raise ValueError(f"{where}: duplicate prompt_id {pid} (also item {seen[pid]})")
        seen[pid] = i
        normalise_category(row["Category"])
    return sorted(rows, key=lambda r: r["prompt_id"])


def load_prompts(path_or_dir: Union[str, Path]) -> list[dict]:
    """Load WISE prompts from a .json/.jsonl/.parquet file or a directory of .json files
    (`*_rewrite.json`, used only for the rewrite analysis, are skipped)."""
    path = Path(path_or_dir)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if not p.name.endswith("_rewrite.json"))
        if not files:
            raise ValueError(f"{path}: no WISE prompt .json files")
        rows = []
        for f in files:
            rows.extend(_read_rows(f))
        return validate_prompt_rows(rows, str(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such WISE prompt file or directory")
    return validate_prompt_rows(_read_rows(path), str(path))


def _read_rows(path: Path) -> list:
    if path.suffix == ".parquet":  # the HF dataset's own files
        import pyarrow.parquet as pq
        return validate_prompt_rows(pq.read_table(path).to_pylist(), str(path))
    text, jsonl = path.read_text(encoding="utf-8"), path.suffix == ".jsonl"
    rows = []
    for lineno, chunk in enumerate(text.splitlines() if jsonl else [text], 1):
        try:
            rows.extend([json.loads(chunk)] if chunk.strip() else [])
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno if jsonl else exc.lineno}: invalid JSON ({exc.msg})") from None
    return validate_prompt_rows(rows if jsonl else (rows or [None])[0], str(path))


@dataclass(frozen=True)
class JudgePrompt:
    # Both are str.format templates over ROW_FIELDS (e.g. {Prompt}, {Explanation}); literal braces doubled.
    system_template: Optional[str]
    user_template: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps([self.system_template, self.user_template]).encode()).hexdigest()

    def render(self, row: Mapping[str, Any], template: Optional[str] = None) -> str:
        try:
            text = self.user_template if template is None else template
            return text.format_map({k: row[k] for k in ROW_FIELDS if k in row})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"judge prompt from {self.source} needs row field {exc}") from None


def default_cache_dir() -> Path:
    from harness.store import cache_root

    return cache_root() / "wise" / UPSTREAM_COMMIT


def judge_prompt(protocol: str, path: Union[str, Path, None] = None,
                 cache_dir: Union[str, Path, None] = None) -> JudgePrompt:
    """The judge's system prompt and user rubric, from `path` (the upstream .py file, or JSON
    {"system": ..., "user": ...} with {Prompt}/{Explanation} placeholders) or from the cache copy of the
    pinned upstream file."""
    _check_protocol(protocol)
    rel = UPSTREAM_FILES[protocol]
    target = Path(path) if path is not None else Path(cache_dir or default_cache_dir()) / rel
    if not target.is_file():
        raise FileNotFoundError(f"WISE {protocol} judge prompt not found: place {UPSTREAM_REPO}@{UPSTREAM_COMMIT} "
                                f"{rel} at {target} (or pass path= to a copy)")
    text = target.read_text(encoding="utf-8")
    if target.suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("user"), str):
            raise ValueError(f"{target}: expected JSON {{\"system\": str|null, \"user\": str}}")
        return JudgePrompt(data.get("system"), data["user"], str(target))
    return _prompt_from_source(text, str(target))


def _fstring_template(node: ast.AST, consts: Mapping[str, ast.AST], kwargs: Mapping[str, str], origin: str) -> str:
    if isinstance(node, ast.Name) and node.id in consts:
        return _fstring_template(consts[node.id], consts, kwargs, origin)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
        if not kwargs:
            return text.replace("{", "{{").replace("}", "}}")
        # A .format() template: map its placeholders onto row fields.
        return re.sub(r"\{(\w+)\}", lambda m: "{" + kwargs.get(m.group(1), m.group(1)) + "}", text)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value).replace("{", "{{").replace("}", "}}"))
            elif isinstance(value, ast.FormattedValue) and value.conversion == -1 and value.format_spec is None:
                parts.append("{" + _row_field(value.value, origin) + "}")
            else:
                raise ValueError(f"{origin}: unsupported f-string part in the judge prompt")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "..." + f"..."
        return (_fstring_template(node.left, consts, kwargs, origin)
                + _fstring_template(node.right, consts, kwargs, origin))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and not node.args):
        mapping = {kw.arg: _row_field(kw.value, origin) for kw in node.keywords if kw.arg}
        return _fstring_template(node.func.value, consts, mapping, origin)
    raise ValueError(f"{origin}: could not read the judge prompt text; pass a JSON file instead")


def _row_field(expr: ast.AST, origin: str) -> str:
    # prompt_data['Prompt'] / prompt / item.explanation -> the row field of that name
    name = getattr(getattr(expr, "slice", None), "value", None) or getattr(expr, "id", None) or \
        getattr(expr, "attr", None)
    for candidate in ROW_FIELDS:
        if isinstance(name, str) and candidate.lower() == name.lower():
            return candidate
    raise ValueError(f"{origin}: judge prompt placeholder {ast.unparse(expr)!r} is not a WISE row field")


def _prompt_from_source(source: str, origin: str) -> JudgePrompt:
    tree = ast.parse(source, filename=origin)
    consts = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name)}
    def fields(node):
        return {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}

    texts: dict[str, ast.AST] = {}  # first system/user message dict in the file wins
    for node in (n for n in ast.walk(tree) if isinstance(n, ast.Dict)):
        d = fields(node)
        role = getattr(d.get("role"), "value", None)
        content = d.get("content")
        if isinstance(content, ast.List):  # [{"type": "text", "text": ...}, {"type": "image_url", ...}]
            content = next((fields(p)["text"] for p in content.elts
                            if isinstance(p, ast.Dict) and "text" in fields(p)), None)
        if role in ("system", "user") and role not in texts and content is not None:
            texts[role] = content
    if "user" not in texts:
        raise ValueError(f"{origin}: no user message found; pass a JSON file instead")
    system = texts.get("system")
    return JudgePrompt(None if system is None else _fstring_template(system, consts, {}, origin),
                       _fstring_template(texts["user"], consts, {}, origin), origin)


def build_judge_messages(prompt_text: Union[JudgePrompt, tuple], row: Mapping[str, Any], png_bytes: bytes,
                         protocol: str = "legacy") -> list[dict]:
    """Official message layout: system text, then user rubric (with PROMPT/EXPLANATION) and the image as a
    base64 PNG data URL."""
    _check_protocol(protocol)
    judge = prompt_text if isinstance(prompt_text, JudgePrompt) else JudgePrompt(*prompt_text, "<caller>")
    if not bytes(png_bytes[:8]) == b"\x89PNG\r\n\x1a\n":
        raise ValueError("judge image must be PNG bytes (the data URL declares image/png)")
    messages = []
    if judge.system_template is not None:
        messages.append({"role": "system", "content": [{"type": "text",
                                                        "text": judge.render(row, judge.system_template)}]})
    url = "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")
    messages.append({"role": "user", "content": [{"type": "text", "text": judge.render(row)},
                                                 {"type": "image_url", "image_url": {"url": url}}]})
    return messages
