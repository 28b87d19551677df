"""The command line as a user meets it: listings, score, rescore, show, and one clear line for every bad input."""
import json
import subprocess
import sys

import pytest

from conftest import DOUBLES, ROOT, run_cli

INC = ["--include", DOUBLES]


def _assert_clean_error(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and err.startswith("error: ") and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_listing_tasks_never_imports_torch():
    code = ("import sys, contextlib, io\nfrom harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['tasks']); main(['models']); main(['scorers'])\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_tasks_lists_registered_tasks_with_data_sources():
    proc = run_cli("tasks", *INC)
    assert proc.returncode == 0
    line = next(l for l in proc.stdout.splitlines() if l.startswith("double_sum"))
    assert "hub,path" in line and "official,strict" in line


def test_unknown_names_suggest_the_closest(tmp_path):
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sums",
                                "--output", tmp_path), "unknown task 'double_sums'", "did you mean 'double_sum'")
    _assert_clean_error(run_cli("run", *INC, "--model", "duble-model", "--tasks", "double_sum",
                                "--output", tmp_path), "unknown model 'duble-model'", "'double-model'")


def test_bad_data_files_name_file_row_and_column(tmp_path):
    missing = tmp_path / "nope.jsonl"
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--data",
                                missing, "--output", tmp_path / "o"), str(missing), "no such file")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"doc_id": "x", "a": 1, "b": 2}\n{"doc_id": "y", "a": 1}\n')
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--data", bad,
                                "--output", tmp_path / "o"), str(bad), "row 2", "'b'")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"doc_id": "x", "a": 1, "b": 2}\n{"doc_id": \n')
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--data", broken,
                                "--output", tmp_path / "o"), str(broken), "line 2")
    typed = tmp_path / "typed.jsonl"
    typed.write_text('{"doc_id": "x", "a": "one", "b": 2}\n')
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--data", typed,
                                "--output", tmp_path / "o"), "row 1", "column 'a'")


def test_checkpoint_folder_without_weights(tmp_path):
    empty = tmp_path / "ckpt"
    empty.mkdir()
    _assert_clean_error(run_cli("run", *INC, "--model", empty, "--tasks", "double_sum", "--output", tmp_path / "o"),
                        str(empty), "no loadable weights")
    (empty / "harness.json").write_text("{not json")
    _assert_clean_error(run_cli("run", *INC, "--model", empty, "--tasks", "double_sum", "--output", tmp_path / "o"),
                        "harness.json")


def test_unwritable_output_and_bad_model_args(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--output",
                                blocker / "sub"), "--output", "cannot write")
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--model-args", "{oops", "--tasks",
                                "double_sum", "--output", tmp_path / "o"), "--model-args", "invalid JSON")
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--model-args", '{"colour": 1}', "--tasks",
                                "double_sum", "--output", tmp_path / "o"), "--model-args", "colour")
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--profile", "nope",
                                "--output", tmp_path / "o"), "--profile nope")


def test_failed_command_loses_nothing_computed(tmp_path):
    out = tmp_path / "o"
    ok = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--output", out, "--no-progress")
    assert ok.returncode == 0, ok.stderr
    before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    bad = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--data", tmp_path / "x.jsonl",
                  "--output", out)
    assert bad.returncode == 2
    after = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert set(before) <= set(after)
    again = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--output", out, "--no-progress")
    assert "24" in again.stdout and again.returncode == 0


def test_run_prints_table_and_show_repeats_it(tmp_path):
    out = tmp_path / "o"
    proc = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--output", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "accuracy *" in proc.stdout and "results: " in proc.stdout
    run_dir = proc.stdout.strip().splitlines()[-1].split("results: ")[1]
    shown = run_cli("show", run_dir)
    assert shown.returncode == 0 and "accuracy *" in shown.stdout
    table = [l for l in proc.stdout.splitlines() if l.startswith("double_sum")]
    assert table and table[0] in shown.stdout
    _assert_clean_error(run_cli("show", tmp_path), "not a run folder")


def _write_sum_data(path):
    rows = [{"doc_id": f"q{i}", "a": i, "b": 1} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_score_predictions_exact_metrics_and_missing_count(tmp_path):
    data, preds = tmp_path / "data.jsonl", tmp_path / "preds.jsonl"
    _write_sum_data(data)
    # q0..q2 right, q3 wrong, q4 missing -> 3/5
    preds.write_text("".join(json.dumps({"doc_id": f"q{i}", "prediction": p}) + "\n"
                             for i, p in enumerate(["1", "2", "3", "7"])))
    proc = run_cli("score", *INC, "double_sum", "--data", data, "--predictions", preds, "--output",
                   tmp_path / "r.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "results").exists()      # a task that asks no scorer leaves no cache behind
    # the progress bar names what answers: the file, not a model
    assert "stored predictions.understand" in proc.stderr and "model." not in proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["metrics"]["accuracy"]["value"] == pytest.approx(0.6)
    assert printed["missing_predictions"] == 1
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["counts"]["failed"] == 1 and saved["dataset"]["source"] == "path"


def test_score_rejects_unknown_doc_ids_and_bad_lines(tmp_path):
    data, preds = tmp_path / "data.jsonl", tmp_path / "preds.jsonl"
    _write_sum_data(data)
    preds.write_text(json.dumps({"doc_id": "zz9", "prediction": "1"}) + "\n")
    _assert_clean_error(run_cli("score", *INC, "double_sum", "--data", data, "--predictions", preds), "'zz9'")
    preds.write_text('{"doc_id": "q1"}\n')
    _assert_clean_error(run_cli("score", *INC, "double_sum", "--data", data, "--predictions", preds),
                        "line 1", "prediction")


def test_rescore_needs_no_model_and_survives_a_deleted_cache(tmp_path):
    import shutil

    out = tmp_path / "o"
    first = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum,double_roundtrip", "--output",
                    out, "--no-progress")
    assert first.returncode == 0, first.stderr
    run_dir = first.stdout.strip().splitlines()[-1].split("results: ")[1]
    before = {t: json.loads((ROOT / run_dir / t / "results.json").read_text() if not run_dir.startswith("/")
                            else open(f"{run_dir}/{t}/results.json").read())["metrics"]
              for t in ("double_sum", "double_roundtrip")}
    shutil.rmtree(out / "cache")
    again = run_cli("rescore", *INC, run_dir)
    assert again.returncode == 0, again.stderr
    assert "stored outputs.understand" in again.stderr and "model." not in again.stderr
    for t, metrics in before.items():
        assert json.loads(open(f"{run_dir}/{t}/results.json").read())["metrics"] == metrics
    strict = run_cli("rescore", *INC, run_dir, "--tasks", "double_sum", "--profile", "strict", "--no-progress")
    assert strict.returncode == 0, strict.stderr
    assert json.loads(open(f"{run_dir}/double_sum/results.json").read())["profile"] == "strict"


def test_partial_rescore_keeps_the_manifest_whole(tmp_path):
    out = tmp_path / "o"
    first = run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum,double_roundtrip", "--output",
                    out, "--no-progress")
    run_dir = first.stdout.strip().splitlines()[-1].split("results: ")[1]
    assert run_cli("rescore", *INC, run_dir, "--tasks", "double_sum", "--no-progress").returncode == 0
    manifest = json.loads(open(f"{run_dir}/manifest.json").read())
    assert manifest["tasks"] == ["double_sum", "double_roundtrip"]
    assert [i["status"] for i in manifest["invocations"]] == ["complete", "complete"]


def test_task_args_reach_the_task_and_unknown_options_fail(tmp_path):
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--task-args",
                                '{"double_sum": {"colour": 1}}', "--output", tmp_path), "--task-args", "'colour'")
    _assert_clean_error(run_cli("run", *INC, "--model", "double-model", "--tasks", "double_sum", "--task-args",
                                '{"double_roundtrip": {}}', "--output", tmp_path), "--task-args", "double_roundtrip")


def test_rescore_refuses_runs_imported_from_lmms_eval(tmp_path):
    run = tmp_path / "m" / "lmms-x"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"run_id": "lmms-x", "tasks": ["pope"], "producer": "lmms-eval",
                                                   "model": {"fingerprint": "f"}}))
    _assert_clean_error(run_cli("rescore", run), "lmms-eval")


def test_rescore_refuses_a_profile_that_changes_prompts(tmp_path):
    out = tmp_path / "o"
    first = run_cli("run", *INC, "--model", "double-model", "--tasks", "mmmu_val", "--data", "shapes", "--limit", "4",
                    "--output", out, "--no-progress")
    assert first.returncode == 0, first.stderr
    run_dir = first.stdout.strip().splitlines()[-1].split("results: ")[1]
    _assert_clean_error(run_cli("rescore", *INC, run_dir, "--profile", "lmms"), "mmmu_val", "run --profile lmms")
