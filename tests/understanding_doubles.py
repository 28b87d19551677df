"""Test doubles and fixture helpers for the understanding-task tests.

`ScriptedModel` and `ScriptedJudge` are TEST DOUBLES, not models: they answer every request from a dict keyed by
request.ref (or doc_id) and count what they were asked, so tests can check prompts, images and call counts.
"""
from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path

import pytest
from PIL import Image as PILImage

from harness.artifacts import ArtifactStore
from harness.cache import NullCache
from harness.executor import Executor, RunnerPool
from harness.runner import Scorer, UnifiedModel
from harness.types import Response


def _digest(answers: dict) -> str:
    return hashlib.sha256(json.dumps(answers, sort_keys=True, default=str).encode()).hexdigest()[:12]


class ScriptedModel(UnifiedModel):
    """Test double: answers `understand` requests from `answers[ref]`; a missing key (or a None value) fails."""

    name = "scripted-double"
    spec = "scripted-double"

    def __init__(self, answers: dict[str, str | None], default: str | None = None):
        self.answers = dict(answers)
        self.default = default
        self.calls = 0          # runner calls (batches)
        self.requests = []      # every request answered, in order

    def fingerprint(self) -> str:
        return f"scripted-double:{_digest(self.answers)}:{self.default}"

    def understand(self, requests):
        self.calls += 1
        out = []
        for r in requests:
            self.requests.append(r)
            key = r.ref if r.ref is not None else r.doc_id
            answer = self.answers.get(key, self.default)
            out.append(Response(text=answer) if answer is not None else
                       Response.failure(f"scripted double has no answer for {key!r}"))
        return out

    def generate(self, requests):
        raise AssertionError("understanding tasks never ask for images")

    def by_ref(self) -> dict:
        return {r.ref: r for r in self.requests}


class ScriptedJudge(Scorer):
    """Test double for the "judge" scorer: answers `judge` requests from `answers[ref]`, counting them."""

    name = "judge"
    kinds = ("judge",)

    def __init__(self, answers: dict[str, str]):
        self.answers = dict(answers)
        self.requests = []

    def fingerprint(self) -> str:
        return f"scripted-judge:{_digest(self.answers)}"

    def judge(self, requests):
        self.requests.extend(requests)
        return [Response(text=self.answers[r.ref]) if r.ref in self.answers else Response.failure("no answer")
                for r in requests]


def run_task(task, model, judge=None, world: int = 1):
    """One task through the engine's executor (no cache, no results folder): (records, aggregate metrics).

    With world > 1 every rank runs its docs[rank::world] and the records are merged as rank 0 merges shards.
    """
    from harness.distributed import merge_in_doc_order

    def scorer(name):
        if name == "judge" and judge is not None:
            return judge
        raise AssertionError(f"unexpected scorer {name!r}")

    per_rank = []
    for rank in range(world):
        with tempfile.TemporaryDirectory() as tmp:
            runs = Executor(RunnerPool(lambda: model, scorer), NullCache(), ArtifactStore(tmp), progress=False,
                            batch_size=4, rank=rank, world=world).run([task])
        per_rank.append(runs[0].records)
    records = merge_in_doc_order(per_rank, world)
    return records, task.aggregate(records)


def png(color=(200, 30, 30), size: int = 8) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, color=(200, 30, 30)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(color))
    return path.name


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_predictions(path: Path, predictions: dict[str, str]) -> Path:
    return write_jsonl(path, [{"doc_id": k, "prediction": v} for k, v in predictions.items()])


def score_cli(capsys, task: str, data, predictions, *extra) -> dict:
    """`python -m harness score` in this process (the same code path as the console command): its printed JSON."""
    from harness.cli import main

    capsys.readouterr()
    code = main(["score", task, "--data", str(data), "--predictions", str(predictions), *map(str, extra)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.fixture(scope="session")
def world_cache(tmp_path_factory):
    """One HARNESS_CACHE for every shapes test of the session, so each world dataset is generated once."""
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture
def shapes(world_cache, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(world_cache))
    return "shapes"


def world_available() -> bool:
    try:
        from harness.world import WORLD_VERSION  # noqa: F401
    except ImportError:
        return False
    return True


def values(metrics: dict) -> dict:
    """{name: value} of an aggregate() result (Metric objects, dicts or numbers), details left out."""
    from harness.metrics import normalize

    return {k: v["value"] for k, v in normalize({k: m for k, m in metrics.items() if k != "details"}).items()}
