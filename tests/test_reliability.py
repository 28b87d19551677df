"""The failure modes of the README's reliability table, each as a user meets it: the command, its exit code, its one
line, and that results computed before are untouched. (Damaged caches: test_cache_damage.py.)"""
import json
import socket

import pytest

from conftest import DOUBLES, run_cli

INC = ["--include", DOUBLES]


def _one_line(proc, code, *needles):
    assert proc.returncode == code, (proc.stdout[-2000:], proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: "), err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1, err
    for n in needles:
        assert n in err, err
    return err


def _snapshot(folder) -> dict:
    """Every file under a folder with its bytes (the cache's SQLite files change as they are read: left out)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "cache" not in p.relative_to(folder).parts}


@pytest.fixture
def finished(tmp_path):
    """A finished run in the output folder every test below writes into."""
    out = tmp_path / "results"
    proc = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_roundtrip", "--output", out,
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return out, _snapshot(out)


def _manifests(out) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/*/manifest.json")}


# --- a runner that fails everything stops the run --------------------------------------------------------------
def test_every_request_failing_stops_the_run_and_keeps_what_was_finished(finished):
    out, before = finished
    cmd = ["run", *INC, "--model", "double-model", "--model-args", '{"fail_on": "sum"}', "--tasks", "double_sum",
           "--output", out, "--no-progress"]
    _one_line(run_cli(*cmd), 3, "runner model.understand failed on every one of its 16 requests",
              "first error: RuntimeError: double model refuses 'sum'", "--max-failure-rate 1")
    assert {k: v for k, v in _snapshot(out).items() if k in before} == before     # the finished run untouched
    failed = [m for m in _manifests(out).values() if m["tasks"] == ["double_sum"]]
    assert [m["status"] for m in failed] == ["failed"] and "model.understand" in failed[0]["failure"]["reason"]
    assert not list(out.glob("*/*/double_sum/results.json"))                     # no table of zeros
    tolerated = run_cli(*cmd, "--max-failure-rate", "1")                         # the user asks to carry on
    assert tolerated.returncode == 0, tolerated.stderr
    assert [m["status"] for m in _manifests(out).values() if m["tasks"] == ["double_sum"]] == ["complete"]


def test_max_failure_rate_bounds_the_share_of_failed_requests(tmp_path):
    # "sum 3 " is one document in seven: a failure share of 1/7 stops a run that allows 0.1, not one allowing 0.5
    cmd = ["run", *INC, "--model", "double-model", "--model-args", '{"fail_on": "sum 3 "}', "--tasks", "double_sum",
           "--output", tmp_path, "--no-progress"]
    _one_line(run_cli(*cmd, "--max-failure-rate", "0.1"), 3, "more than --max-failure-rate 0.1 allows")
    assert run_cli(*cmd, "--max-failure-rate", "0.5").returncode == 0
    assert run_cli(*cmd).returncode == 0                                         # the default: not all failed
    _one_line(run_cli(*cmd, "--max-failure-rate", "2"), 2, "--max-failure-rate 2.0", "between 0 and 1")


def _dead_judge() -> str:
    with socket.socket() as s:                  # a port nothing listens on: every judge call is refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _wise_with_dead_judge(tmp_path, out, *extra):
    prompt = tmp_path / "judge_prompt.json"
    prompt.write_text(json.dumps({"system": None, "user": "Judge this image against: {Prompt}"}))
    task_args = {"wise": {"judge": "judge", "judge_prompt": str(prompt), "world_n": 4}}
    scorer_args = {"judge": {"base_url": _dead_judge(), "max_retries": 0, "timeout": 2}}
    return run_cli("run", "--tasks", "wise", "--data", "shapes", "--task-args", json.dumps(task_args),
                   "--scorer-args", json.dumps(scorer_args), "--output", out, "--no-progress", *extra)


def test_a_judge_failing_every_call_stops_the_run_and_a_missing_headline_fails_it(tmp_path):
    out = tmp_path / "results"
    _one_line(_wise_with_dead_judge(tmp_path, out), 3, "runner scorer:judge.judge failed on every one",
              "Connection refused")
    [manifest] = _manifests(out).values()
    assert manifest["status"] == "failed"
    # told to carry on, the run finishes, but WiScore's Overall has no score to stand on: still not a finished run
    proc = _wise_with_dead_judge(tmp_path, out, "--max-failure-rate", "1")
    _one_line(proc, 3, "wise: headline 'overall' could not be computed", "Overall refused")
    assert "wise" in proc.stdout                                                  # the table is still shown
    [manifest] = _manifests(out).values()
    assert manifest["status"] == "failed" and "overall" in manifest["failure"]["reason"]
    assert manifest["invocations"][0]["status"] == "failed" and manifest["invocations"][1]["status"] == "failed"


def test_a_damaged_adapter_stops_the_run_in_one_line(finished, tmp_path):
    from harness.models.checkpoints import TINY_DIR

    out, before = finished
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "harness.json").write_text(json.dumps({"adapter": "janus", "base_model": str(TINY_DIR), "step": 1}))
    (ckpt / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "lora_dropout": 0.0,
        "bias": "none", "base_model_name_or_path": str(TINY_DIR)}))
    (ckpt / "adapter_model.safetensors").write_bytes(b"\x80\x01\x00\x00\x00\x00\x00\x00{\"lora")  # cut short
    err = _one_line(run_cli("run", "--model", ckpt, "--tasks", "vqav2_val", "--data", "shapes", "--limit", "4",
                            "--output", out, "--no-progress"), 2, f"loading the adapter of {ckpt}", "failed")
    assert "damaged or incomplete" in err
    assert {k: v for k, v in _snapshot(out).items() if k in before} == before


# --- argument values are checked before any work ---------------------------------------------------------------
@pytest.mark.parametrize("args, needles", [
    (["--model-args", '{"guidance_scale": "high"}'], ["--model-args for tiny-janus: guidance_scale",
                                                      "expected a number"]),
    (["--model-args", '{"merge_lora": "maybe"}'], ["merge_lora", "true or false"]),
    (["--device", "cuda:7"], ["--device cuda:7"]),
    (["--device", "tpu"], ["--device 'tpu'", "not a device"]),
    (["--model-args", '{"device": "cuda:7"}'], ["--model-args for tiny-janus: device cuda:7"]),
    (["--scorer-args", '{"jduge": {"model": "gpt-4o-2024-05-13"}}'], ["unknown scorer 'jduge'",
                                                                      "did you mean 'judge'"]),
    (["--scorer-args", '{"judge": 5}'], ["the value for 'judge' must be an object"]),
    (["--scorer-args", '{"judge": {"max_concurrency": "many"}}'], ["judge: max_concurrency", "whole number"]),
    (["--scorer-args", '{"judge": {"api_key": "sk-x"}}'], ["unknown argument 'api_key'"]),
    (["--task-args", '{"vqav2_val": {"image_root": 5}}'], ["option 'image_root'", "a string"]),
    (["--threads", "0"], ["--threads 0"]),
], ids=lambda v: v[0] if isinstance(v, list) and v and v[0].startswith("--") else None)
def test_bad_argument_values_are_refused_before_any_work(tmp_path, args, needles):
    out = tmp_path / "results"
    _one_line(run_cli("run", "--tasks", "vqav2_val", "--limit", "2", "--output", out, *args), 2, *needles)
    assert not out.exists()                                                       # nothing was started


@pytest.mark.parametrize("task, option, needle", [
    ("mmbench_en_dev", {"judge": "maybe"}, "expected true or false, got 'maybe'"),   # "maybe" used to mean off
    ("unified_bench", {"failure_mode": "skip"}, "'skip' is not one of 'zero', 'exclude'"),
    ("geneval", {"n_images": "four"}, "expected a whole number"),
    ("wise", {"size": "big"}, "expected an image size"),
])
def test_task_options_of_the_wrong_type_are_refused(tmp_path, task, option, needle):
    _one_line(run_cli("run", *INC, "--model", "double-model", "--tasks", task, "--data", "shapes", "--task-args",
                      json.dumps({task: option}), "--output", tmp_path), 2, f"--task-args for {task}", needle)


def test_a_device_index_beyond_the_gpus_is_refused(monkeypatch):
    torch = pytest.importorskip("torch")
    from harness.errors import HarnessError
    from harness.options import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)      # a machine with one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_device("cuda:0")
    with pytest.raises(HarnessError, match=r"--device cuda:7: this machine has 1 GPU \(cuda:0 to cuda:0\)"):
        check_device("cuda:7")


def test_an_empty_data_file_is_an_error(tmp_path, finished):
    out, before = finished
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _one_line(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--data", empty, "--output",
                      out), 2, str(empty), "holds no documents")
    assert _snapshot(out) == before


def test_empty_and_duplicated_predictions_are_errors(tmp_path):
    data, preds = tmp_path / "data.jsonl", tmp_path / "preds.jsonl"
    data.write_text("".join(json.dumps({"doc_id": f"q{i}", "a": i, "b": 1}) + "\n" for i in range(3)))
    preds.write_text("\n")
    _one_line(run_cli("score", *INC, "double_sum", "--data", data, "--predictions", preds), 2, "holds no predictions")
    preds.write_text(json.dumps({"doc_id": "q1", "prediction": "2"}) + "\n"
                     + json.dumps({"doc_id": "q1", "prediction": "3"}) + "\n")
    _one_line(run_cli("score", *INC, "double_sum", "--data", data, "--predictions", preds), 2,
              "lines 1 and 2 both give doc_id 'q1'")


@pytest.mark.parametrize("change, needle", [
    ({"config": {"task_args": [1]}}, "config.task_args: expected a JSON object"),
    ({"config": {"seed": "x"}}, "config.seed: expected a whole number"),
    ({"tasks": ["../../elsewhere"]}, "not a plain folder name"),
    ({"invocations": "many"}, "'invocations' must be a list"),
])
def test_commands_reading_a_tampered_manifest_give_one_line(finished, change, needle):
    out, _ = finished
    [path] = out.glob("*/*/manifest.json")
    manifest = json.loads(path.read_text())
    for key, value in change.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(manifest))
    _one_line(run_cli("rescore", *INC, path.parent, "--no-progress"), 2, needle)
    if "config" not in change:
        _one_line(run_cli("show", path.parent), 2, needle)


# --- nothing is written outside the output folder ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../escaped", "..", "/tmp/absolute-run", "a/b", "a\\b", "tab\tname"])
def test_run_names_stay_inside_the_output_folder(tmp_path, name):
    out = tmp_path / "deep" / "results"
    _one_line(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--run-name", name,
                      "--output", out), 2, "--run-name", "plain folder name")
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.rglob("manifest.json"))


def test_run_names_are_checked_for_callers_of_the_api_too(tmp_path, doubles):
    from harness.api import RunConfig, evaluate
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="--run-name"):
        evaluate("double-model", ["double_sum"], RunConfig(output=tmp_path / "o", run_name="../x", progress=False))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("tag, needle", [("../k=v", "the key must be"), ("k=line\nbreak", "one line")])
def test_bad_tags_are_refused(tmp_path, tag, needle):
    _one_line(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--tag", tag, "--output",
                      tmp_path), 2, needle)


def test_structured_tags_from_the_api_are_kept_and_must_be_json():
    from harness.errors import HarnessError
    from harness.options import check_tags

    check_tags({"step": 200, "hyper_parameters": {"lr": 1e-4, "lora": {"r": 16}}})   # what the trainer passes
    with pytest.raises(HarnessError, match="--tag hyper_parameters: the value must be JSON data"):
        check_tags({"hyper_parameters": {"lr": float("nan")}})


def test_imported_lmms_results_stay_inside_the_output_folder(tmp_path):
    folder = tmp_path / "lmms"
    folder.mkdir()
    data = {"results": {"pope": {"alias": "pope", "pope_accuracy,none": 0.5}}, "config": {"model": "m"},
            "date": "../../../../escaped", "lmms_eval_version": "0.7.3"}   # out/m/lmms-../../../../ is out's parent
    path = folder / "x_results.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "deep" / "results"
    proc = run_cli("import-lmms", path, "--output", out)
    assert proc.returncode == 0, proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != path]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written), written
    assert len(list(out.glob("*/*/manifest.json"))) == 1


# --- a full disk or a spent quota -------------------------------------------------------------------------------
def test_a_full_disk_mid_run_ends_in_one_line_keeping_every_stored_batch(tmp_path, doubles, monkeypatch, capsys):
    import errno
    import sqlite3

    import harness.artifacts
    from harness.cli import main

    out = tmp_path / "out"
    argv = ["run", "--model", "double-model", "--tasks", "double_roundtrip", "--batch-size", "4", "--output",
            str(out), "--no-progress"]
    write = harness.artifacts.write_bytes
    written = []

    def quota_spent_after_ten_images(path, data, **kw):     # test double: the filesystem's answer to a full disk
        if len(written) >= 10:
            raise OSError(errno.EDQUOT, "Disk quota exceeded", str(path))
        written.append(path)
        return write(path, data, **kw)

    monkeypatch.setattr(harness.artifacts, "write_bytes", quota_spent_after_ten_images)
    assert main(argv) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left writing ")
    assert "(Disk quota exceeded); free some, or choose another --output" in err[0]
    assert err[0].endswith("then rerun the same command to resume: finished work is saved")
    [manifest] = out.glob("*/*/manifest.json")
    assert json.loads(manifest.read_text())["status"] == "failed"
    with sqlite3.connect(next((out / "cache").glob("*.sqlite"))) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM responses WHERE kind='generate'")]
    # whole batches only, each with its images on disk; the batch that found the quota spent left no row
    assert 0 < len(rows) < 60 and len(rows) % 4 == 0
    assert all((out / "artifacts" / sha[:2] / f"{sha}.png").is_file() for r in rows for sha in r["images"])

    monkeypatch.setattr(harness.artifacts, "write_bytes", write)
    assert main(argv) == 0
    assert json.loads(manifest.read_text())["status"] == "complete"
    counts = json.loads((manifest.parent / "double_roundtrip" / "results.json").read_text())["counts"]
    assert counts["failed"] == 0 and counts["computed"] == 30 + 60 + 60 - 30 - len(rows)
