"""Engine overhead benchmark (not a test): prints figures, compares against targets.

A model whose cost is known (it sleeps a fixed time per request, like a GPU busy on a batch) answers N requests,
once through a bare Python loop over the same batches and once through the harness (request building, content
keys, cache lookups, write-through commits, records, results files). Reports:
  * overhead ratio = harness wall time / bare loop wall time, at batch sizes 1 and 16  (target <= 1.05 at 16)
  * rerun of the finished run (every answer cached) as a fraction of the first run  (target <= 2%)

    python bench/engine.py [--n 1000] [--cost-ms 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.api import RunConfig, evaluate  # noqa: E402
from harness.metrics import mean  # noqa: E402
from harness.runner import UnifiedModel  # noqa: E402
from harness.task import DatasetInfo, Stage, Task, understand  # noqa: E402
from harness.types import Response  # noqa: E402


class FixedCostModel(UnifiedModel):
    """Benchmark stand-in: sleeps cost_s per request of a batch, then answers; no real model."""

    name = "fixed-cost"

    def __init__(self, cost_s: float):
        self.cost_s = cost_s
        self.spec = "fixed-cost"

    def fingerprint(self) -> str:
        return f"fixed-cost:{self.cost_s}"

    def understand(self, requests):
        time.sleep(self.cost_s * len(requests))
        return [Response(text=str(len(r.text))) for r in requests]


class SyntheticTask(Task):
    name = "bench_synthetic"
    data_sources = ("hub",)

    def __init__(self, n: int, **kw):
        super().__init__(**kw)
        self.n = n

    def load(self):
        docs = [{"doc_id": str(i), "q": f"question {i}?",
                 "image": PILImage.new("RGB", (32, 32), (i % 256, (7 * i) % 256, 3))} for i in range(self.n)]
        return docs, DatasetInfo("inline", "synthetic", n_total=self.n)

    def stages(self):
        return [Stage("answer", lambda doc, out: [understand(doc["q"], [doc["image"]])])]

    def process(self, doc, outputs):
        return {"ok": float(outputs["answer"][0].ok)}

    def aggregate(self, records):
        return {"ok": mean([r["ok"] for r in records])}


def bare_loop(model: FixedCostModel, n: int, batch: int) -> float:
    task = SyntheticTask(n)
    reqs = [understand(d["q"], [d["image"]]) for d in task.docs()]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        model.understand(reqs[i:i + batch])
    return time.perf_counter() - t0


def harness_run(model: FixedCostModel, n: int, batch: int, out: Path) -> float:
    t0 = time.perf_counter()
    evaluate(model, [SyntheticTask(n)], RunConfig(output=out, batch_size=batch, progress=False, cli=[]))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="requests per run")
    ap.add_argument("--cost-ms", type=float, default=20.0, help="model cost per request in milliseconds")
    args = ap.parse_args()
    model = FixedCostModel(args.cost_ms / 1000)
    print(f"{args.n} requests, model cost {args.cost_ms} ms/request")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 16):
            bare = bare_loop(model, args.n, batch)
            full = harness_run(model, args.n, batch, Path(tmp) / f"b{batch}")
            rerun = harness_run(model, args.n, batch, Path(tmp) / f"b{batch}")
            ratio = full / bare
            target = " (target <= 1.05)" if batch == 16 else ""
            print(f"batch {batch:>2}: bare {bare:7.3f}s  harness {full:7.3f}s  overhead ratio {ratio:.3f}{target}")
            print(f"          rerun (all cached) {rerun:6.3f}s = {100 * rerun / full:.2f}% of the first run "
                  f"(target <= 2%)")


if __name__ == "__main__":
    main()
