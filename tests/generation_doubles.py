"""Test doubles for the generation and consistency tasks (GenEval, WISE, UnifiedBench). None is a real model.

* `WorldRenderDouble`: a TEST DOUBLE unified model over the embedded world. mode "perfect" draws, for a prompt of a
  world dataset it was given, a reference scene that satisfies it (seeded by the request seed, so GenEval's four
  samples differ), captions an image by writing its parsed scene as JSON and regenerates that scene from such a
  caption; mode "blank" draws an empty background and captions "nothing". `fail` names refs whose requests fail,
  `blank` refs whose images are drawn blank.
* `ScriptedDetector`, `ScriptedClassifier`, `ScriptedEmbedder`, `ScriptedDistance`: TEST DOUBLES for the real
  scorers, answering from dicts keyed by request.ref.
* `CannedJudge`, `SequencedJudge`: TEST DOUBLES for the "judge" scorer (canned replies by ref, or by ref and
  attempt).
* `run_task` / `run_engine`: a task through the executor (no results folder) or through harness.api.evaluate.
"""
from __future__ import annotations

import hashlib
import json
import tempfile

import numpy as np
from PIL import Image as PILImage

from harness.artifacts import ArtifactStore
from harness.cache import NullCache
from harness.executor import Executor, RunnerPool
from harness.runner import Scorer, UnifiedModel
from harness.types import Response

WORLD_SCORERS = ("world_detector", "world_judge", "world_scene")


class WorldRenderDouble(UnifiedModel):
    """TEST DOUBLE: renders the world's reference scene for known prompts (see the module docstring)."""

    name = "world-render-double"

    def __init__(self, mode: str = "perfect", geneval=(), wise=(), size: int = 64, fail=(), blank=()):
        assert mode in ("perfect", "blank")
        self.mode, self.size, self.fail, self.blank = mode, size, set(fail), set(blank)
        self.spec = f"world-render-double-{mode}"
        self.geneval = {r["prompt"]: r for r in geneval}
        self.wise = {r["Prompt"]: r for r in wise}
        self.requests = []

    def fingerprint(self) -> str:
        return f"{self.spec}:{len(self.geneval)}:{len(self.wise)}:{sorted(self.fail)}:{sorted(self.blank)}"

    def _blank(self):
        from harness.world.scene import BACKGROUND

        return PILImage.new("RGB", (self.size, self.size), BACKGROUND)

    def _scene_for(self, text: str, seed: int):
        from tasks.geneval import world as bench_geneval
        from tasks.wise import world as bench_wise
        from harness.world.scene import Scene

        rng = np.random.default_rng(seed)
        if text.startswith("scene:"):
            return Scene.from_dict(json.loads(text[len("scene:"):]))
        if text in self.geneval:
            return bench_geneval.reference_scene(self.geneval[text], rng)
        if text in self.wise:
            return bench_wise.reference_scene(self.wise[text], rng)
        raise AssertionError(f"the double knows no prompt {text!r}")

    def generate(self, requests):
        from harness.world import render

        out = []
        for r in requests:
            self.requests.append(r)
            if r.ref in self.fail:
                out.append(Response.failure("double told to fail"))
            elif self.mode == "blank" or r.ref in self.blank:
                out.append(Response(images=(self._blank(),)))
            else:
                out.append(Response(images=(render(self._scene_for(r.text, r.seed), self.size),)))
        return out

    def understand(self, requests):
        from harness.world import parse

        out = []
        for r in requests:
            self.requests.append(r)
            if r.ref in self.fail:
                out.append(Response.failure("double told to fail"))
            elif self.mode == "blank":
                out.append(Response(text="nothing"))
            else:
                scene = parse(r.images[0].pil()).to_scene()
                out.append(Response(text="scene:" + json.dumps(scene.to_dict())))
        return out


class SolidDouble(UnifiedModel):
    """TEST DOUBLE: one solid-colour image per request (colour from the ref), captions "caption <ref>"."""

    name = "solid-double"
    spec = "solid-double"

    def __init__(self, fail=(), size: int = 32):
        self.fail, self.size = set(fail), size

    def fingerprint(self) -> str:
        return f"solid-double:{sorted(self.fail)}"

    def generate(self, requests):
        out = []
        for r in requests:
            if r.ref in self.fail:
                out.append(Response.failure("double told to fail"))
                continue
            h = int(hashlib.sha256(str(r.ref).encode()).hexdigest()[:6], 16) % 200
            out.append(Response(images=(PILImage.new("RGB", (self.size, self.size), (h, 255 - h, 90)),)))
        return out

    def understand(self, requests):
        return [Response.failure("double told to fail") if r.ref in self.fail else Response(text=f"caption {r.ref}")
                for r in requests]


class _Scripted(Scorer):
    """Answers from `answers[ref]` (a dict of values, or None for a failure); records every request."""

    def __init__(self, name: str, kind: str, answers: dict):
        self.name, self.kinds, self.answers, self.requests = name, (kind,), dict(answers), []
        setattr(self, kind, self._answer)

    def fingerprint(self) -> str:
        return f"scripted-{self.name}:{json.dumps(self.answers, sort_keys=True, default=str)[:64]}"

    def _answer(self, requests):
        self.requests.extend(requests)
        out = []
        for r in requests:
            v = self.answers.get(r.ref)
            out.append(Response(values=v) if v is not None else Response.failure(f"no scripted answer for {r.ref}"))
        return out


def ScriptedDetector(answers: dict) -> Scorer:
    """TEST DOUBLE for "detector": answers[ref] = {class: [{"box", "score", "mask"?}]}."""
    return _Scripted("detector", "detect", {k: {"detections": v} for k, v in answers.items()})


def ScriptedClassifier(answers: dict) -> Scorer:
    """TEST DOUBLE for "clip_openclip": answers[ref] = colour label."""
    return _Scripted("clip_openclip", "classify", {k: {"label": v} for k, v in answers.items()})


def ScriptedEmbedder(name: str, answers: dict) -> Scorer:
    """TEST DOUBLE for an embedding backbone: answers[ref] = vector."""
    return _Scripted(name, "embed", {k: {"embedding": list(v)} for k, v in answers.items()})


def ScriptedDistance(answers: dict) -> Scorer:
    """TEST DOUBLE for "dreamsim": answers[ref] = distance."""
    return _Scripted("dreamsim", "distance", {k: {"distance": v, "similarity": 1 - v} for k, v in answers.items()})


class CannedJudge(Scorer):
    """TEST DOUBLE for "judge": answers[ref] is the judge's text (None fails it), `default` for other refs."""

    name = "judge"
    kinds = ("judge",)

    def __init__(self, answers: dict | None = None, default: str | None = None, model: str = "gpt-4o-2024-05-13"):
        self.answers, self.default, self.model, self.requests = dict(answers or {}), default, model, []

    def fingerprint(self) -> str:
        return f"canned-judge:{hashlib.sha256(json.dumps([self.answers, self.default]).encode()).hexdigest()[:12]}"

    def judge(self, requests):
        self.requests.extend(requests)
        out = []
        for r in requests:
            text = self.answers.get(r.ref, self.default)
            out.append(Response(text=text, values={"text": text, "model": self.model}) if text is not None
                       else Response.failure("judge: HTTP 500"))
        return out


class SequencedJudge(CannedJudge):
    """TEST DOUBLE for "judge" whose reply depends on the attempt: answers[ref][k - 1] answers attempt k (the
    request's params["attempt"], 1 when absent); None fails that attempt, a missing attempt repeats the last."""

    def judge(self, requests):
        self.requests.extend(requests)
        out = []
        for r in requests:
            replies = self.answers.get(r.ref, [self.default])
            text = replies[min(int(r.params.get("attempt", 1)), len(replies)) - 1]
            out.append(Response(text=text, values={"text": text, "model": self.model}) if text is not None
                       else Response.failure("judge: HTTP 500"))
        return out


def _factory(scorers: dict):
    def make(name):
        if name in scorers:
            return scorers[name]
        if name in WORLD_SCORERS:
            from harness.registry import SCORERS

            return SCORERS.load(name)()
        raise AssertionError(f"unexpected scorer {name!r}: tests never load real weights")
    return make


def run_task(task, model, scorers: dict | None = None):
    """One task through the executor (no cache, no results folder): (records, aggregate metrics)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Executor(RunnerPool(lambda: model, _factory(scorers or {})), NullCache(), ArtifactStore(tmp),
                        progress=False, batch_size=16).run([task])
    return runs[0].records, task.aggregate(runs[0].records)


def run_engine(tmp_path, tasks, model, scorers: dict | None = None, **config):
    """Tasks through harness.api.evaluate (results folder, cache, artifacts under tmp_path/out): the RunResult."""
    from unittest import mock

    from harness.api import RunConfig, evaluate

    tasks = tasks if isinstance(tasks, list) else [tasks]
    cfg = RunConfig(output=tmp_path / "out", progress=False, batch_size=16, **config)
    with mock.patch("harness.scorers.make_scorer", lambda name, args=None: _factory(scorers or {})(name)):
        return evaluate(model, tasks, cfg)
