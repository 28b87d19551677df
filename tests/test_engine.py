"""The engine end to end on test doubles: results layout, caching, identity, batching, failures."""
import json
import sqlite3

import pytest

from harness.api import RunConfig, evaluate
from harness.models import resolve_model


def _run(tmp_path, tasks, **kw):
    model_args = kw.pop("model_args", {})
    model = resolve_model("double-model", model_args)
    cfg = RunConfig(output=tmp_path / "out", progress=False, **kw)
    return evaluate(model, tasks, cfg)


def test_results_layout_and_exact_metrics(tmp_path, doubles):
    res = _run(tmp_path, ["double_sum", "double_roundtrip"])
    run_dir = res.run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["tasks"] == ["double_sum", "double_roundtrip"]
    assert manifest["model"]["fingerprint"] == "double-model:a"
    assert "packages" in manifest["env"] and manifest["config"]["seed"] == 1234
    r = json.loads((run_dir / "double_sum" / "results.json").read_text())
    # the double answers wrong exactly when hash % 4 == 0: recompute the expected accuracy independently
    expected = [float(doubles._h("a", f"sum {d['a']} {d['b']}") % 4 != 0) for d in doubles._sum_docs(24)]
    assert r["metrics"]["accuracy"]["value"] == pytest.approx(sum(expected) / 24)
    assert r["metrics"]["accuracy"]["n"] == 24 and r["metrics"]["accuracy"]["stderr"] > 0
    assert r["counts"] == {"requests": 24, "cached": 0, "failed": 0, "computed": 24}
    assert r["dataset"]["n_evaluated"] == 24 and len(r["dataset"]["sha256"]) == 64
    samples = [json.loads(x) for x in (run_dir / "double_sum" / "samples.jsonl").read_text().splitlines()]
    assert [s["doc_id"] for s in samples] == [f"s{i}" for i in range(24)]
    assert samples[0]["requests"]["answer"][0]["text"] == "sum 0 0" and "record" in samples[0]
    rt = [json.loads(x) for x in (run_dir / "double_roundtrip" / "samples.jsonl").read_text().splitlines()]
    describe = rt[1]["requests"]["describe"][0]
    assert describe["images"] and all(len(h) == 64 for h in describe["images"])    # hashes, never pixels
    regen = rt[1]["requests"]["regenerate"]
    assert len(regen) == 2 and regen[0]["seed"] != regen[1]["seed"]
    sha = regen[0]["response"]["images"][0]
    assert (tmp_path / "out" / "artifacts" / sha[:2] / f"{sha}.png").exists()


def test_rerun_is_all_cached_and_identical(tmp_path, doubles):
    log = tmp_path / "calls.jsonl"
    first = _run(tmp_path, ["double_sum", "double_roundtrip"], model_args={"log": str(log)})
    n_calls = len(doubles.read_log(log))
    samples = first.run_dir / "double_sum" / "samples.jsonl"
    written = samples.stat()
    second = _run(tmp_path, ["double_sum", "double_roundtrip"], model_args={"log": str(log)})
    assert len(doubles.read_log(log)) == n_calls          # no model call at all
    for task in ("double_sum", "double_roundtrip"):
        assert second.results[task].to_dict()["metrics"] == first.results[task].to_dict()["metrics"]
        c = second.results[task].to_dict()["counts"]
        assert c["cached"] == c["requests"] and c["computed"] == 0
    assert second.run_dir == first.run_dir
    # the same samples are not written (and waited on) again; results.json, whose counts changed, is
    assert (samples.stat().st_ino, samples.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert json.loads((first.run_dir / "double_sum" / "results.json").read_text())["counts"]["cached"] == 24


def test_write_bytes_replaces_changed_content_and_keeps_identical(tmp_path):
    from harness.store import write_bytes

    path = tmp_path / "f.json"
    write_bytes(path, b"one")
    ino = path.stat().st_ino
    write_bytes(path, b"one")
    assert path.stat().st_ino == ino
    write_bytes(path, b"two")          # same size, other bytes
    assert path.read_bytes() == b"two" and path.stat().st_ino != ino
    write_bytes(path, b"three!")
    assert path.read_bytes() == b"three!" and not list(tmp_path.glob(".*.tmp"))


def test_different_fingerprint_gets_no_cache_hits(tmp_path, doubles):
    _run(tmp_path, ["double_sum"])
    other = _run(tmp_path, ["double_sum"], model_args={"variant": "b"})
    assert other.results["double_sum"].to_dict()["counts"]["cached"] == 0
    assert other.results["double_sum"].to_dict()["counts"]["computed"] == 24


def test_no_cache_and_overwrite(tmp_path, doubles):
    log = tmp_path / "calls.jsonl"
    _run(tmp_path, ["double_sum"], model_args={"log": str(log)})
    _run(tmp_path, ["double_sum"], model_args={"log": str(log)}, overwrite=True)
    _run(tmp_path, ["double_sum"], model_args={"log": str(log)}, use_cache=False)
    assert sum(e["n"] for e in doubles.read_log(log)) == 3 * 24


def test_requests_pooled_across_tasks_in_batches(tmp_path, doubles):
    log = tmp_path / "calls.jsonl"
    _run(tmp_path, ["double_sum", "double_roundtrip"], model_args={"log": str(log)}, batch_size=16)
    calls = doubles.read_log(log)
    understand = [c["n"] for c in calls if c["kind"] == "understand"]
    # 24 sums + 30 descriptions go to the model as one pool of 54 in batches of 16
    assert understand == [16, 16, 16, 6]
    assert [c["n"] for c in calls if c["kind"] == "generate"] == [16, 16, 16, 12]


def test_failures_are_recorded_not_dropped(tmp_path, doubles):
    res = _run(tmp_path, ["double_sum"], model_args={"fail_on": "sum 3 "}, batch_size=8)
    r = res.results["double_sum"].to_dict()
    failing = [d for d in doubles._sum_docs(24) if d["a"] == 3]
    assert r["counts"]["failed"] == len(failing) > 0
    assert r["metrics"]["failed"]["value"] == len(failing)
    assert r["metrics"]["accuracy"]["n"] == 24               # failures still count, as wrong
    samples = [json.loads(x) for x in (res.run_dir / "double_sum" / "samples.jsonl").read_text().splitlines()]
    errors = [s for s in samples if "error" in s["requests"]["answer"][0]["response"]]
    assert len(errors) == len(failing) and "refuses" in errors[0]["requests"]["answer"][0]["response"]["error"]
    # failures are not cached: a rerun without the fault computes exactly them
    log = tmp_path / "calls.jsonl"
    _run(tmp_path, ["double_sum"], model_args={"log": str(log)})
    assert sum(e["n"] for e in doubles.read_log(log)) == len(failing)


def test_keys_do_not_depend_on_batch_size(tmp_path, doubles):
    _run(tmp_path, ["double_roundtrip"], batch_size=3)
    again = _run(tmp_path, ["double_roundtrip"], batch_size=7)
    c = again.results["double_roundtrip"].to_dict()["counts"]
    assert c["cached"] == c["requests"]


def test_cache_is_sqlite_wal(tmp_path, doubles):
    _run(tmp_path, ["double_sum"])
    db = tmp_path / "out" / "cache" / "responses.rank0.sqlite"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM responses WHERE target='model'").fetchone()[0] == 24


def test_request_replace_keeps_the_dataclass_contract():
    import dataclasses

    from harness.task import understand

    r = understand("What colour?", params={"max_new_tokens": 4})
    stamped = r.replace(task="t", doc_id="d1", seed=5)
    assert (stamped.task, stamped.doc_id, stamped.seed, stamped.text) == ("t", "d1", 5, "What colour?")
    assert (r.task, r.seed) == ("", None)                       # the original is untouched
    assert stamped == dataclasses.replace(r, task="t", doc_id="d1", seed=5)
    assert stamped.key("fp") != r.key("fp")                     # the seed is part of the content key
    with pytest.raises(dataclasses.FrozenInstanceError):
        stamped.seed = 6
    with pytest.raises(TypeError, match="no field 'sead'"):
        r.replace(sead=5)


def test_a_task_that_sends_an_undeclared_kind_is_stopped(tmp_path, doubles):
    from harness.errors import HarnessError

    class Misdeclared(doubles.DoubleRoundTrip):
        model_kinds = ("understand",)             # but its second stage generates

    with pytest.raises(HarnessError, match=r"task double_roundtrip sent the model a 'generate' request but "
                                           r"declares model_kinds = \('understand',\)"):
        evaluate(doubles.DoubleModel(), [Misdeclared()], RunConfig(output=tmp_path / "r", progress=False))


def test_the_manifest_records_the_hardware_that_ran_the_kernels(tmp_path, doubles, monkeypatch):
    import os

    import torch

    from harness import determinism

    res = _run(tmp_path, ["double_sum"])
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    hardware = manifest["determinism"]["hardware"]
    assert hardware["cpu_count"] == os.cpu_count() and "cuda" not in hardware      # a CPU run never starts CUDA
    # each invocation keeps its own: a run resumed elsewhere mixes answers of two machines, and says so
    assert manifest["invocations"][-1]["hardware"] == hardware
    # test double: a process that used two GPUs
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (9, 0))
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    cuda = determinism.hardware()["cuda"]
    assert cuda["devices"] == [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}] * 2
    assert cuda["cudnn"] == 91002 and cuda["runtime"] == torch.version.cuda


def test_show_warns_when_a_runs_answers_come_from_different_machines(tmp_path, doubles, capsys):
    from harness.cli import main

    res = _run(tmp_path, ["double_sum"])
    manifest_path = res.run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    first = dict(manifest["invocations"][0])
    # the same run folder, resumed on a GPU machine (the invocation edited in, as another machine would write it)
    h100 = {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}
    gpu = {"cpu": "x", "cpu_count": 64, "cuda": {"runtime": "12.8", "cudnn": 91002, "devices": [h100] * 8}}
    manifest["invocations"].append({**first, "hardware": gpu})
    manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["show", str(res.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "  2  " in out and "complete     NVIDIA H100 80GB HBM3 x8" in out
    assert "note: this run's answers were computed on different machines" in out


# the hardware records of two 8-GPU nodes, as determinism.hardware() writes them
H100_NODE = {"cpu": "x", "cpu_count": 64, "cuda": {"devices": [{"name": "NVIDIA H100 80GB HBM3"}] * 8}}
A100_NODE = {"cpu": "x", "cpu_count": 64, "cuda": {"devices": [{"name": "NVIDIA A100-SXM4-80GB"}] * 8}}


def test_one_commands_ranks_combine_into_one_record():
    from harness.distributed import combine_invocation

    reports = [{"hardware": H100_NODE, "batch_limits": {}},
               {"hardware": H100_NODE, "batch_limits": {"model.generate": 32}},
               {"hardware": A100_NODE, "batch_limits": {"model.generate": 16, "model.understand": 8}},
               {"hardware": A100_NODE, "batch_limits": {}}]
    # the size that fits on every rank, and the ranks that ran elsewhere than rank 0
    assert combine_invocation(reports) == {"batch_limits": {"model.generate": 16, "model.understand": 8},
                                           "other_hardware": [{"ranks": [2, 3], "hardware": A100_NODE}]}
    assert combine_invocation(reports[:2]) == {"batch_limits": {"model.generate": 32}}
    assert combine_invocation([{"hardware": H100_NODE, "batch_limits": {}}] * 3) == {}


def test_show_tells_which_ranks_of_one_command_ran_on_other_machines(tmp_path, doubles, capsys):
    from harness.cli import main

    res = _run(tmp_path, ["double_sum"])
    manifest_path = res.run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # test double: one 16-process command whose second node had other GPUs (as its rank 0 would write it)
    manifest["invocations"] = [{**manifest["invocations"][0], "hardware": H100_NODE,
                                "other_hardware": [{"ranks": list(range(8, 16)), "hardware": A100_NODE}]}]
    manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["show", str(res.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA H100 80GB HBM3 x8 (rank 0); NVIDIA A100-SXM4-80GB x8 (ranks 8-15)" in out
    assert "note: this run's answers were computed on different machines" in out


def test_the_reused_json_encoders_write_what_the_standard_encoder_writes():
    """Cache keys, the dataset hash and samples.jsonl lines go through encoders whose C part is built once; a key
    that changed would make every cached answer unreachable, so each must write exactly the standard library's
    text, odd values included."""
    import hashlib
    import math

    import numpy as np
    from PIL import Image as PILImage

    from harness.task import generate
    from harness.types import Image, _json_default, reusable_encode

    image = Image(pil=PILImage.new("RGB", (2, 2)))
    values = [{"b": [1.5, math.nan, -math.inf, -0.0, 1e300, 2 ** 70], "é": "ü\u2028\x00\"\\", "a": None},
              "text", 1.0, None, [], {"x": {"z": [{"y": ()}]}}, {"arr": np.arange(3)}, {"set": {3, 1, 2}},
              {"image": image}, {3: "int key", 2: "sorted as ints"}]
    for options in ({"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False, "default": _json_default},
                    {"ensure_ascii": False, "sort_keys": True, "default": str}, {}):
        standard = json.JSONEncoder(**options)
        reused = reusable_encode(standard)
        for value in values:
            try:
                expected = standard.encode(value)
            except TypeError as e:                   # a numpy array without a default: the same refusal
                with pytest.raises(TypeError, match=str(e).split(" is ")[0][:20]):
                    reused(value)
                continue
            assert reused(value) == expected, (options, value)
    request = generate("a red cube", size=384).replace(seed=7)
    body = {"fp": "fp", "target": "model", "kind": "generate", "text": "a red cube", "images": [],
            "params": {"size": 384}, "seed": 7}
    standard = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    assert request.key("fp") == hashlib.sha256(standard.encode(body).encode()).hexdigest()
