"""Test doubles for driving the engine: a deterministic fake model, a fake scorer and small tasks.

Loaded into the CLI with `--include tests/doubles.py`. Nothing here is a real model or benchmark.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from PIL import Image as PILImage

from harness.data import content_sha256, load_rows
from harness.errors import DataError
from harness.metrics import mean
from harness.registry import MODELS, SCORERS, TASKS
from harness.runner import Scorer, UnifiedModel
from harness.task import DatasetInfo, Stage, Task, generate, score, understand
from harness.types import Response


def _h(*parts) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _log(path, entry: dict) -> None:
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()


@MODELS.register("double-model", "test double: deterministic fake unified model")
class DoubleModel(UnifiedModel):
    """Answers sums right unless a hash says otherwise; draws a solid colour named by the prompt."""

    name = "double-model"

    def __init__(self, spec="double-model", variant="a", log=None, delay=0.0, fail_on=None, device=None):
        self.spec, self.variant, self.log, self.delay, self.fail_on = spec, variant, log, float(delay), fail_on

    def fingerprint(self) -> str:
        return f"double-model:{self.variant}"

    def understand(self, requests):
        _log(self.log, {"kind": "understand", "n": len(requests), "pid": os.getpid()})
        time.sleep(self.delay)
        out = []
        for r in requests:
            if self.fail_on and self.fail_on in (r.text or ""):
                raise RuntimeError(f"double model refuses {self.fail_on!r}")
            if r.text.startswith("sum"):
                a, b = map(int, r.text.split()[1:3])
                wrong = _h(self.variant, r.text) % 4 == 0
                out.append(Response(text=str(a + b + (1 if wrong else 0))))
            else:  # describe the image: its dominant colour
                px = r.images[0].pil().getpixel((0, 0))
                out.append(Response(text="colour %d %d %d" % px))
        return out

    def generate(self, requests):
        _log(self.log, {"kind": "generate", "n": len(requests), "pid": os.getpid()})
        time.sleep(self.delay)
        out = []
        for r in requests:
            parts = r.text.split()
            rgb = tuple(int(x) for x in parts[1:4]) if parts[0] == "colour" else (0, 0, 0)
            jitter = r.seed % 3
            out.append(Response(images=(PILImage.new("RGB", (8, 8), tuple(min(255, c + jitter) for c in rgb)),)))
        return out


@MODELS.register("double-oom-model", "test double: the deterministic fake model with little memory")
class OutOfMemoryDouble(DoubleModel):
    """DoubleModel whose batches of more than `fits` requests (and any batch holding a request with `never_fits` in
    its text) fail as PyTorch's CPU allocator fails: RuntimeError "DefaultCPUAllocator: can't allocate memory".
    A failed call holds a working buffer in its frame until it is released; a call that finds an earlier one's
    buffer still alive refuses to run, as a GPU would refuse it the memory."""

    def __init__(self, fits=1, never_fits=None, rank_fits=None, **kw):
        super().__init__(**kw)
        self.fits, self.never_fits = int(fits), never_fits
        # {"1": 2}: this rank of a multi-process run has less memory than the others
        self.fits = int((rank_fits or {}).get(os.environ.get("RANK", "0"), self.fits))
        self.held: list = []

    def _allocate(self, kind, requests):
        import weakref

        import torch

        if any(ref() is not None for ref in self.held):
            raise RuntimeError("the failed attempt's memory is still held")
        _log(self.log, {"kind": kind, "tried": len(requests), "pid": os.getpid()})
        working = torch.zeros(len(requests), 4)
        self.held.append(weakref.ref(working))
        if len(requests) > self.fits or any(self.never_fits and self.never_fits in (r.text or "") for r in requests):
            torch.empty(2 ** 60, dtype=torch.uint8)       # the allocator's own failure, not an imitation of it

    def understand(self, requests):
        self._allocate("understand", requests)
        return super().understand(requests)

    def generate(self, requests):
        self._allocate("generate", requests)
        return super().generate(requests)


@SCORERS.register("double_sim", "test double: colour similarity of two images")
class DoubleSimilarity(Scorer):
    name = "double_sim"
    kinds = ("compare",)

    def __init__(self, log=None):
        self.log = log

    def fingerprint(self) -> str:
        return "double_sim:1"

    def compare(self, requests):
        out = []
        for r in requests:
            a, b = (im.pil().getpixel((0, 0)) for im in r.images)
            out.append(Response(values={"similarity": 1.0 - sum(abs(x - y) for x, y in zip(a, b)) / 765}))
        return out


def _sum_docs(n: int) -> list[dict]:
    return [{"doc_id": f"s{i}", "a": i % 7, "b": (3 * i) % 5} for i in range(n)]


@TASKS.register("double_sum", "test double: the model adds two numbers (one stage)")
class DoubleSum(Task):
    name = "double_sum"
    data_sources = ("hub", "path")
    profiles = ("official", "strict")
    n_docs = 24

    def load(self):
        if self.data:
            rows = load_rows(self.data, required=("doc_id", "a", "b"))
            for n, row in enumerate(rows, 1):
                if not isinstance(row["a"], int):
                    raise DataError(f"{self.data}: row {n}, column 'a': expected an integer")
            return rows, DatasetInfo("path", str(self.data), sha256=content_sha256(rows))
        docs = _sum_docs(self.n_docs)
        return docs, DatasetInfo("inline", "double_sum", sha256=content_sha256(docs))

    def stages(self):
        return [Stage("answer", lambda doc, out: [understand(f"sum {doc['a']} {doc['b']}")])]

    def process(self, doc, outputs):
        resp = outputs["answer"][0]
        pred = resp.text if resp.ok else None
        return {"prediction": pred, "correct": float(pred == str(doc["a"] + doc["b"])), "failed": not resp.ok}

    def aggregate(self, records):
        return {"accuracy": mean([r["correct"] for r in records]),
                "failed": sum(r["failed"] for r in records)}


@TASKS.register("double_roundtrip", "test double: describe -> regenerate -> compare (three stages)")
class DoubleRoundTrip(Task):
    name = "double_roundtrip"
    data_sources = ("hub",)
    n_docs = 30

    def load(self):
        docs = [{"doc_id": f"r{i}", "rgb": ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256)}
                for i in range(self.n_docs)]
        for d in docs:
            d["image"] = PILImage.new("RGB", (8, 8), d["rgb"])
        return docs, DatasetInfo("inline", "double_roundtrip", sha256=content_sha256(
            [{k: v for k, v in d.items() if k != "image"} for d in docs]))

    def stages(self):
        return [
            Stage("describe", lambda doc, out: [understand("describe", [doc["image"]])]),
            Stage("regenerate", lambda doc, out: [generate(out["describe"][0].text, sample=k) for k in range(2)]
                  if out["describe"][0].ok else []),
            Stage("compare", lambda doc, out: [score("double_sim", "compare", images=[doc["image"], r.images[0]])
                                               for r in out["regenerate"] if r.ok]),
        ]

    def process(self, doc, outputs):
        sims = [r.values["similarity"] if r.ok else 0.0 for r in outputs["compare"]]
        return {"similarity": sum(sims) / 2 if sims else 0.0}

    def aggregate(self, records):
        return {"similarity": mean([r["similarity"] for r in records])}


def read_log(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
