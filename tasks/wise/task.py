"""WISE: generate one image per knowledge prompt -> a vision-language judge scores it -> WiScore / binary score ->
category means -> weighted Overall (tasks/wise/scoring.py holds the rules, parsing.py reads the judge's replies).

Profiles:
* legacy (default): the original WISE protocol. Judge gpt-4o-2024-05-13 at temperature 0, max_tokens 2000, the
  rubric of WISE_legacy/gpt_eval.py; three 0-2 scores, WiScore = (0.7 C + 0.2 R + 0.1 A) / 2; Overall with the
  category weights, refused (value None, reason in details) when any prompt or category has no usable score.
* verified: WISE-Verified. Judge Qwen3.5-35B-A3B (temperature 0, max_tokens 500, thinking off: configure the judge
  scorer with --scorer-args), binary `Score: 0/1`, its weights and id ranges; as calculate_verified.py, Overall
  aggregates the prompts scored (details.overall_partial lists the missing) and is refused only when a category
  has none.
* lmms: lmms-eval's WISE task: legacy rubric with max_tokens 128, failures (generation, judge, parse) score 0,
  Overall renormalised over the categories present.
Judge attempts: as both official loops (and lmms-eval) do, the judge is asked again, up to 3 attempts per image,
when its reply yields no score or the request fails; stages judge, judge_2, judge_3 hold the attempts, each cached as
its own request. Records carry judge_attempts; details.judge_attempts counts them.
Failures are never dropped silently: details count failed generations, judge errors and parse failures.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

from harness.store import cache_root
from harness.errors import DataError
from harness.export import first_image
from harness.metrics import Metric, mean
from harness.task import MODEL, Stage, Task, data_kind, generate, score, scorer_target
from tasks.common import load_source
from tasks.downloads import cached_file

from . import parsing, scoring

HUB = {"repo": "Yuwei-Niu/WISE", "config": None, "split": "test", "revision": None,
       "unpinned": "no commit of it could be checked for this release"}
RAW = f"https://raw.githubusercontent.com/{scoring.UPSTREAM_REPO}/{scoring.UPSTREAM_COMMIT}"
# WISE-Verified prompt files (data_verified/ at the pinned commit), by sha256
VERIFIED_FILES = {
    "cultural_common_sense_verified.json": "23482925266e2784b2ba24b75239fdc6691bf85ae253d2c4aa38b71b45fefa89",
    "spatio-temporal_reasoning_verified.json": "42c0b9d829365e392c2d4af283850dc76b1f922ab0c79198366de4f306eaf2b6",
    "natural_science_verified.json": "6f346c336f16f611e5c73e0fcacdccb336c200d534cf111526b22d50ea912555",
}
LMMS_MAX_TOKENS = 128
# lmms-eval's WISE task asks up to MAX_EXTRACT_RETRIES = 3 times when a reply does not parse, as upstream does
LMMS_ATTEMPTS = 3
# what the world's rule judge is sent: it reads the Explanation from params, the text is for people reading samples
WORLD_JUDGE_TEMPLATE = 'PROMPT: "{Prompt}"\nEXPLANATION: "{Explanation}"'


class WISE(Task):
    """WISE (1,000 prompts of Yuwei-Niu/WISE, split test; or WISE-Verified's data_verified files).

    Data: legacy/lmms default the hub dataset (`hub:ORG/NAME@REV` for another copy); verified defaults to the
    data_verified/*_verified.json files of PKU-YuanGroup/WISE@eb51174 (fetched into the cache when online, pinned
    by sha256); `--data PATH` a WISE prompt file or folder; `--data shapes` the world's rows, judged by
    world_judge. Options: judge (scorer name), judge_prompt (the upstream .py file or a JSON {system, user}
    prompt; default the cache copy of the pinned upstream file, fetched when online), size, world_n / world_seed.
    """

    name = "wise"
    model_kinds = ("generate",)
    version = "1"
    description = "WISE: world-knowledge text-to-image, WiScore with category weights (legacy GPT-4o judge)"
    profiles = ("legacy", "verified", "lmms")
    headline = "overall"
    hub = HUB
    options_help = {
        "judge": "judge scorer (default judge; world_judge with --data shapes; e.g. judge_local)",
        "judge_prompt": "judge prompt file: the upstream gpt_eval.py / vllm_eval.py or JSON {system, user}",
        "size": "image size asked of the model (default the model's own)",
        "world_n": "--data shapes: number of world prompts (default 50)",
        "world_seed": "--data shapes: world seed (default 0)",
    }
    option_types = {"judge": "str?", "judge_prompt": "str", "size": "size?", "world_n": "int", "world_seed": "int"}

    def __init__(self, data=None, profile=None, limit=None, **options):
        super().__init__(data, profile, limit, **options)
        self.protocol = "verified" if self.profile == "verified" else "legacy"
        self.shapes = data_kind(data) == "shapes"
        self.judge = options.get("judge") or ("world_judge" if self.shapes else "judge")
        self.size = options.get("size")
        self.prompt: scoring.JudgePrompt | None = None
        self.category_of: dict[int, str] | None = None
        self.judge_models: list[str] = []

    # --- data -------------------------------------------------------------------------------------------------
    def load(self):
        self.prompt = self._judge_prompt()       # before any generation: a missing prompt file fails fast
        if self.shapes:
            opts = {"n": int(self.options.get("world_n", 50)), "seed": int(self.options.get("world_seed", 0))}
            from harness.data import world_rows

            from .world import build_wise

            rows, info = world_rows("wise", build_wise, **opts)
        elif data_kind(self.data) == "path" and not str(self.data).startswith("hub:"):
            from harness.data import content_sha256
            from harness.task import DatasetInfo

            rows = self._read(self.data)
            info = DatasetInfo("path", str(self.data), sha256=content_sha256(rows))
        elif self.protocol == "verified" and self.data is None:
            rows, info = self._verified_default()
        else:
            rows, info = load_source(self, self.hub, "wise", required=scoring.ROW_FIELDS[:5])
        try:
            rows = scoring.validate_prompt_rows([_plain(r) for r in rows], info.name)
        except ValueError as e:
            raise DataError(str(e)) from None
        # the world's ids do not fill 1-1000: its expected prompts and categories are its own rows
        self.category_of = scoring.categories_from_rows(rows) if self.shapes else None
        docs = [{"doc_id": str(r["prompt_id"]), **r} for r in rows]
        return docs, info

    @staticmethod
    def _read(path) -> list[dict]:
        try:
            return scoring.load_prompts(Path(path).expanduser())
        except (ValueError, FileNotFoundError) as e:
            raise DataError(str(e)) from None

    def read_image_folder(self, folder: Path) -> dict[str, Path]:
        """`score --images`: WISE's own layout (gpt_eval.py, vllm_eval.py), one {prompt_id}.png per prompt. A prompt
        without its file is a failed generation, as in a run (the official scripts skip it: legacy Overall is
        refused, verified Overall aggregates the prompts present)."""
        files = {p.name: p for p in folder.iterdir() if p.is_file()}
        return {d["doc_id"]: files[f"{d['prompt_id']}.png"] for d in self.docs() if f"{d['prompt_id']}.png" in files}

    def _verified_default(self):
        from harness.data import content_sha256
        from harness.task import DatasetInfo

        rows = []
        for name, digest in VERIFIED_FILES.items():
            path = cached_file(f"{RAW}/data_verified/{name}", f"wise/{scoring.UPSTREAM_COMMIT}/data_verified/{name}",
                               sha256=digest, what=f"WISE-Verified's data_verified/{name} "
                               f"({scoring.UPSTREAM_REPO}@{scoring.UPSTREAM_COMMIT})",
                               alternative="or pass --data PATH to a copy of the data_verified folder")
            rows.extend(self._read(path))
        return rows, DatasetInfo("hub", f"{scoring.UPSTREAM_REPO}:data_verified", revision=scoring.UPSTREAM_COMMIT,
                                 sha256=content_sha256(rows), extra={"files": VERIFIED_FILES})

    def _judge_prompt(self) -> scoring.JudgePrompt:
        if self.judge == "world_judge":
            return scoring.JudgePrompt(None, WORLD_JUDGE_TEMPLATE, "world rule judge")
        path = self.options.get("judge_prompt")
        cache_dir = cache_root() / "wise" / scoring.UPSTREAM_COMMIT
        rel = scoring.UPSTREAM_FILES[self.protocol]
        if path is None:
            cached_file(f"{RAW}/{rel}", f"wise/{scoring.UPSTREAM_COMMIT}/{rel}",
                        what=f"the WISE {self.protocol} judge prompt ({scoring.UPSTREAM_REPO}@"
                        f"{scoring.UPSTREAM_COMMIT} {rel})", alternative="or give the task option judge_prompt=PATH")
        try:
            return scoring.judge_prompt(self.protocol, path, cache_dir=cache_dir)
        except (FileNotFoundError, ValueError, SyntaxError) as e:
            raise DataError(str(e).splitlines()[0]) from None

    # --- requests ---------------------------------------------------------------------------------------------
    def stages(self):
        # one stage per judge attempt: a later attempt asks again only about the images whose earlier replies the
        # official loop would re-ask, and each attempt is a request of its own (cached, never asked twice)
        attempts = [Stage(_attempt_stage(k), functools.partial(self._build_judge, attempt=k),
                          uses=(scorer_target(self.judge),)) for k in range(1, self.attempts + 1)]
        return [Stage("generate", self._build_generate, uses=(MODEL,)), *attempts]

    @property
    def attempts(self) -> int:
        return LMMS_ATTEMPTS if self.profile == "lmms" else scoring.JUDGE_ATTEMPTS[self.protocol]

    def _build_generate(self, doc, out):
        params = {"size": self.size} if self.size else {}
        return [generate(doc["Prompt"], ref=doc["doc_id"], **params)]   # the raw Prompt, no template

    def _build_judge(self, doc, out, attempt: int = 1):
        gen = out["generate"][0]
        if not gen.ok or not gen.images:
            return []
        if attempt > 1 and not self._reask(out.get(_attempt_stage(attempt - 1)) or []):
            return []
        if self.prompt is None:
            self.prompt = self._judge_prompt()
        params = {"temperature": 0.0,
                  "max_tokens": LMMS_MAX_TOKENS if self.profile == "lmms"
                  else scoring.JUDGE_SETTINGS[self.protocol]["max_tokens"]}
        if self.prompt.system_template is not None:
            params["system"] = self.prompt.render(doc, self.prompt.system_template)
        if self.judge == "world_judge":
            params = {"Prompt": doc["Prompt"], "Explanation": doc["Explanation"]}
        if attempt > 1:
            params["attempt"] = attempt         # its own cache key: a resumed run never re-asks an answered attempt
        return [score(self.judge, "judge", text=self.prompt.render(doc), images=[gen.images[0]], ref=doc["doc_id"],
                      **params)]

    def _parse(self, resp) -> parsing.ParsedJudgement:
        if not resp.ok:
            return parsing.ParsedJudgement(None, resp.error, reask=True)   # the official loops retry errors too
        text = (resp.values or {}).get("text", resp.text)
        return parsing.parse_verified(text) if self.protocol == "verified" else parsing.parse_legacy(text)

    def _reask(self, responses) -> bool:
        """Whether the official loop asks again after this attempt (an attempt not made: it had no need to)."""
        return bool(responses) and self._parse(responses[0]).reask

    # --- scoring ----------------------------------------------------------------------------------------------
    def process(self, doc, outputs):
        pid = int(doc["prompt_id"])
        rec = {"prompt_id": pid, "category": scoring.normalise_category(doc["Category"]),
               "subcategory": doc.get("Subcategory"), "score": None, "failed": None, "error": None}
        gen = outputs["generate"][0]
        if not gen.ok or not gen.images:
            return {**rec, "failed": "generate", "error": gen.error or "no image"}
        replies = [outputs[_attempt_stage(k)][0] for k in range(1, self.attempts + 1)
                   if outputs.get(_attempt_stage(k))]
        judged = replies[-1]               # the attempt that settled it: later ones exist only after a re-ask
        parsed = self._parse(judged)
        rec["judge_attempts"] = len(replies)
        if not judged.ok:
            return {**rec, "failed": "judge", "error": judged.error}
        values = judged.values or {}
        rec.update(judge_text=values.get("text", judged.text), judge_model=values.get("model"))
        if not parsed.ok:
            return {**rec, "failed": "parse", "error": parsed.error}
        rec.update(scores=parsed.scores, parse_method=parsed.method)
        rec["score"] = (float(parsed.scores["score"]) if self.protocol == "verified"
                        else scoring.wiscore(**parsed.scores))
        return rec

    def aggregate(self, records):
        lmms = self.profile == "lmms"
        by_id = {r["prompt_id"]: r["score"] for r in records}
        # lmms-eval scores what it evaluated (failures 0); the official scripts expect every prompt of the set
        category_of = {r["prompt_id"]: r["category"] for r in records} if lmms else self.category_of
        result = scoring.overall(by_id, self.protocol, category_of=category_of, renormalise=lmms,
                                 missing_as_zero=lmms)
        used = [r for r in records if r["score"] is not None or lmms]
        cats: dict[str, list[float]] = {}
        for r in used:
            cats.setdefault(r["category"], []).append(r["score"] or 0.0)
        metrics = {"overall": Metric(result.value, self._stderr(result, cats), len(used))}
        for c in scoring.CATEGORIES:
            if c in result.category_scores:
                m = mean(cats.get(c, []))
                metrics[c.lower()] = Metric(result.category_scores[c], m.stderr, result.category_counts[c])
        if self.protocol == "legacy":
            for key in parsing.LEGACY_KEYS:      # the judge's own 0-2 scale
                metrics[key] = mean([float(r["scores"][key]) for r in records if r.get("scores")], scale=1.0)
        failures = {k: sum(r["failed"] == k for r in records) for k in ("generate", "judge", "parse")}
        self.judge_models = sorted({r["judge_model"] for r in records if r.get("judge_model")})
        details = {"protocol": self.protocol, "failures": failures, "n_failed": sum(failures.values()),
                   "n_scored": sum(r["score"] is not None for r in records),
                   "missing_prompt_ids": len(result.missing_prompt_ids),
                   "missing_categories": result.missing_categories, "renormalised": result.renormalised,
                   "failures_scored_zero": result.missing_as_zero, "judge_models": self.judge_models,
                   "parse_errors": sorted({r["error"] for r in records if r["failed"] == "parse"})[:20],
                   "judge_attempts": _attempt_counts(records, self.attempts)}
        details["coverage_complete"] = not result.missing_prompt_ids and not result.missing_categories
        if result.value is not None and result.missing_prompt_ids and not lmms:
            ids = result.missing_prompt_ids
            details["overall_partial"] = (f"Overall over the prompts scored: {len(ids)} expected prompts have no "
                                          f"usable score (e.g. ids {ids[:5]}); calculate_verified.py warns and "
                                          "aggregates the prompts present, as here")
        if result.value is None:
            details["overall_refused"] = self._refusal(result)
            info = self._info
            if info is not None and info.n_evaluated < info.n_total:
                details["overall_refused"] += f"; --limit evaluated {info.n_evaluated} of {info.n_total} prompts"
        metrics["details"] = details
        return metrics

    @staticmethod
    def _stderr(result, cats) -> float | None:
        """Standard error of a weighted mean of category means: sqrt(sum w_c^2 var_c / n_c) over the weights used."""
        if result.value is None:
            return None
        w = scoring.WEIGHTS[result.protocol]
        present = [c for c in scoring.CATEGORIES if c in result.category_scores]
        total = sum(w[c] for c in present) if result.renormalised else 1.0
        var = 0.0
        for c in present:
            m = mean(cats.get(c, []))
            if m.stderr is None:
                return None
            var += (w[c] / total) ** 2 * m.stderr ** 2
        return math.sqrt(var)

    @staticmethod
    def _refusal(result) -> str:
        parts = []
        if result.missing_prompt_ids:
            ids = result.missing_prompt_ids
            parts.append(f"{len(ids)} expected prompts have no usable score (e.g. ids {ids[:5]})")
        if result.missing_categories:
            parts.append(f"no score in categories {', '.join(result.missing_categories)}")
        script = "calculate_verified.py" if result.protocol == "verified" else "Calculate.py"
        return (f"Overall refused as the official {script} does: " + "; ".join(parts)
                + " (profile lmms renormalises and scores failures 0)")

    def settings(self):
        judge = {"scorer": self.judge, "model": self._judge_model(),
                 "expected_model": scoring.JUDGE_SETTINGS[self.protocol]["model"],
                 "temperature": 0.0, "max_tokens": LMMS_MAX_TOKENS if self.profile == "lmms"
                 else scoring.JUDGE_SETTINGS[self.protocol]["max_tokens"],
                 "prompt_sha256": self.prompt.sha256 if self.prompt else None,
                 "prompt_source": f"{scoring.UPSTREAM_REPO}@{scoring.UPSTREAM_COMMIT} "
                                  f"{scoring.UPSTREAM_FILES[self.protocol]}" if self.judge != "world_judge"
                 else "world rule judge",
                 "attempts": self.attempts,
                 "reask": "when a reply yields no score or the request fails, as the official loop does"}
        return {"protocol": self.protocol, "judge": judge, "generation_prompt": "the raw Prompt, no template",
                "image_size": self.size or "model default", "images_per_prompt": 1,
                "failures": "scored 0, Overall renormalised (lmms-eval)" if self.profile == "lmms"
                else "skipped; Overall refused when a category has no score, or under legacy any prompt "
                "(official Calculate.py); verified aggregates the prompts present and lists the missing "
                "(official calculate_verified.py)"}

    export_layout = "wise"

    @classmethod
    def export_images(cls, samples, writer):
        """WISE's gpt_eval.py layout: <out>/{prompt_id}.png."""
        for line in samples:
            entries = (line.get("requests") or {}).get("generate") or []
            name = str((line.get("record") or {}).get("prompt_id", line["doc_id"]))
            writer.image(first_image(entries[0]) if entries else None, f"{name}.png")

    def _judge_model(self) -> str | None:
        """The snapshot the judge reported answering with (aggregate collects it); None leaves the leaderboard to
        the judge scorer's own identity, never the expected model, so another judge is never mistaken for it."""
        if len(self.judge_models) == 1:
            return self.judge_models[0]
        return None if not self.judge_models else "mixed: " + ", ".join(self.judge_models)


def _attempt_stage(k: int) -> str:
    """Stage name of judge attempt k: the first keeps the name "judge" (and so its cached answers)."""
    return "judge" if k == 1 else f"judge_{k}"


def _attempt_counts(records, limit: int) -> dict:
    """How many judge attempts each judged prompt took, and how many were scored only because one was re-asked."""
    used = [r["judge_attempts"] for r in records if r.get("judge_attempts")]
    return {"limit": limit, "per_prompt": {str(k): used.count(k) for k in range(1, limit + 1)},
            "scored_after_reasking": sum(1 for r in records if r.get("judge_attempts", 0) > 1
                                         and r["score"] is not None)}


def _plain(row: dict) -> dict:
    """Hub rows may store prompt_id as a numpy or string integer; the WISE validators want a Python int."""
    row = dict(row)
    pid = row.get("prompt_id")
    if isinstance(pid, str) and pid.strip().isdigit():
        row["prompt_id"] = int(pid)
    elif hasattr(pid, "item"):
        row["prompt_id"] = int(pid.item())
    return row
