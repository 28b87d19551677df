"""A batch that runs out of memory: halved, retried once its memory is released, and later batches keep to the
size that fitted; a request that fits in no batch fails alone."""
import json

import pytest

from harness.api import RunConfig, evaluate
from harness.models import resolve_model
from harness.runner import is_out_of_memory


def _run(tmp_path, name, model, model_args, tasks, batch_size=8):
    cfg = RunConfig(output=tmp_path / name, progress=False, batch_size=batch_size)
    return evaluate(resolve_model(model, model_args), tasks, cfg)


def test_a_batch_that_runs_out_of_memory_is_halved_and_later_batches_keep_to_what_fitted(tmp_path, doubles,
                                                                                         capsys):
    log = tmp_path / "calls.jsonl"
    tasks = ["double_sum", "double_roundtrip"]
    small = _run(tmp_path, "small", "double-oom-model", {"fits": 3, "log": str(log)}, tasks)
    plenty = _run(tmp_path, "plenty", "double-model", {}, tasks)
    for task in tasks:
        counts = small.results[task].to_dict()["counts"]
        assert counts["failed"] == 0 and counts["computed"] == counts["requests"]
        assert small.results[task].to_dict()["metrics"] == plenty.results[task].to_dict()["metrics"]
    assert small.manifest.status == "complete"
    understand = [c["tried"] for c in doubles.read_log(log) if c["kind"] == "understand" and "tried" in c]
    # 8 and 4 run out of memory; then every batch of 8 goes as four of 2, with no further failed attempt
    assert understand[:2] == [8, 4] and set(understand[2:]) == {2} and sum(understand[2:]) == 24 + 30
    generate = [c["tried"] for c in doubles.read_log(log) if c["kind"] == "generate" and "tried" in c]
    assert generate[:2] == [8, 4] and set(generate[2:]) == {2}
    manifest = json.loads((small.run_dir / "manifest.json").read_text())
    assert manifest["invocations"][-1]["batch_limits"] == {"model.understand": 2, "model.generate": 2}
    err = capsys.readouterr().err
    assert "model.understand: out of memory with 8 requests in a batch; going on in batches of at most 4" in err
    assert "model.understand: out of memory with 4 requests in a batch; going on in batches of at most 2" in err


def test_a_request_that_fits_in_no_batch_fails_alone_and_the_rest_are_answered(tmp_path, doubles):
    res = _run(tmp_path, "run", "double-oom-model", {"fits": 8, "never_fits": "sum 3 "}, ["double_sum"])
    r = res.results["double_sum"].to_dict()
    failing = [d for d in doubles._sum_docs(24) if d["a"] == 3]
    assert r["counts"]["failed"] == len(failing) > 0 and r["counts"]["requests"] == 24
    samples = [json.loads(x) for x in (res.run_dir / "double_sum" / "samples.jsonl").read_text().splitlines()]
    errors = {s["doc_id"]: s["requests"]["answer"][0]["response"].get("error") for s in samples}
    assert {d for d, e in errors.items() if e} == {d["doc_id"] for d in failing}
    assert all("can't allocate memory" in e for e in errors.values() if e)
    # halving isolated them: the limit went down to 1 for the rest of the run
    assert json.loads((res.run_dir / "manifest.json").read_text())["invocations"][-1]["batch_limits"] == {
        "model.understand": 1}


def test_a_failure_other_than_memory_does_not_lower_the_batch_size(tmp_path, doubles):
    log = tmp_path / "calls.jsonl"
    res = _run(tmp_path, "run", "double-model", {"fail_on": "sum 3 ", "log": str(log)}, ["double_sum"])
    assert "batch_limits" not in json.loads((res.run_dir / "manifest.json").read_text())["invocations"][-1]
    sizes = [c["n"] for c in doubles.read_log(log)]
    assert 8 in sizes[1:]          # batches after the first failure are whole again


@pytest.mark.parametrize("error, expected", [
    ("cuda", True),
    (RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB, other allocations: 1.00 GB)"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 1152921504606846976 bytes. Error code 12 (Cannot allocate memory)"), True),
    (MemoryError(), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
    (RuntimeError("The size of tensor a (4) must match the size of tensor b (5) at non-singleton dimension 1"), False),
    (ValueError("generate needs a text prompt"), False),
])
def test_what_counts_as_running_out_of_memory(error, expected):
    if error == "cuda":
        import torch

        error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
                                       "of 79.19 GiB of which 1.06 GiB is free.")
    assert is_out_of_memory(error) is expected


def test_a_model_that_does_not_fit_on_its_device_stops_the_run_in_one_line_after_one_attempt(tmp_path, monkeypatch):
    import torch
    from transformers import JanusForConditionalGeneration

    from harness.errors import HarnessError

    moves = []

    def out_of_memory(self, *args, **kwargs):     # test double: a device too small for the weights
        moves.append(args)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 14.00 GiB. GPU 0 has a total capacity "
                                     "of 79.19 GiB of which 3.06 GiB is free.")

    monkeypatch.setattr(JanusForConditionalGeneration, "to", out_of_memory)
    cfg = RunConfig(output=tmp_path / "out", progress=False, data="shapes", limit=16, batch_size=8)
    with pytest.raises(HarnessError, match=r"^tiny-janus does not fit in the memory of cpu \(CUDA out of memory"):
        evaluate(resolve_model("tiny-janus", {}), ["vqav2_val"], cfg)
    assert len(moves) == 1          # not loaded again for every halved batch and every request
    manifest = json.loads(next((tmp_path / "out").glob("*/*/manifest.json")).read_text())
    assert manifest["status"] == "failed" and "does not fit" in manifest["failure"]["reason"]


def test_a_scorer_that_does_not_fit_stops_the_run_in_one_line():
    from harness.errors import HarnessError
    from harness.scorers.base import ModelScorer

    class Unplaceable(ModelScorer):                 # test double: loading allocates more than the host has
        name = "unplaceable"

        def _load(self):
            import torch

            torch.empty(2 ** 60, dtype=torch.uint8)

    with pytest.raises(HarnessError, match=r"^scorer unplaceable \(.*\) does not fit in the memory of cpu "
                                           r"\(.*can't allocate memory"):
        Unplaceable(weights="none").ensure_loaded()


def test_training_that_runs_out_of_memory_ends_in_one_line_naming_what_to_lower(monkeypatch, capsys):
    import torch

    import unigame.run
    from unigame.cli import main

    def out_of_memory(cfg):                         # test double: a step too big for the device
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB.")

    monkeypatch.setattr(unigame.run, "train", out_of_memory)
    assert main(["train", "--data", "shapes"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: out of memory while training (OutOfMemoryError: CUDA out of memory.")
    assert "\n" not in err
    assert "--batch-size" in err and "--resume" in err

    def broken(cfg):                                # anything else keeps its traceback: a bug, not a setting
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(unigame.run, "train", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["train", "--data", "shapes"])


def test_show_tells_which_command_ran_out_of_memory(tmp_path, doubles, capsys):
    from harness.cli import main

    small = _run(tmp_path, "small", "double-oom-model", {"fits": 3}, ["double_sum"])
    _run(tmp_path, "small", "double-oom-model", {"fits": 3}, ["double_sum"])       # a rerun: all cached
    capsys.readouterr()
    assert main(["show", str(small.run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    history = lines[lines.index("history: 2 command(s) worked on this run"):]
    assert history[1].endswith("; out of memory, batches cut: model.understand at most 2")
    assert "out of memory" not in history[2] and "complete" in history[2] and len(history) == 3
