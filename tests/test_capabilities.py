"""Models that only understand or only generate: refused before any work for tasks named on the command line,
skipped (and listed) for tasks a suite brought in, "not applicable" on the leaderboards."""
from __future__ import annotations

import json

import pytest

from harness.api import RunConfig, evaluate
from harness.errors import HarnessError
from harness.leaderboard import build_boards
from harness.leaderboard.render import markdown
from tests.conftest import DOUBLES, run_cli

INC = ["--include", DOUBLES]


def test_named_task_the_model_cannot_serve_fails_before_any_work(tmp_path):
    log = tmp_path / "calls.jsonl"
    out = run_cli("run", *INC, "--model", "double-understander", "--model-args", json.dumps({"log": str(log)}),
                  "--tasks", "double_sum,double_draw", "--output", tmp_path / "r", "--no-progress")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "error: --model double-understander cannot run double_draw: the task needs image generation, and this "
        "model only does image understanding (answering questions about images); choose a model with that "
        "capability or other --tasks")
    assert not log.exists()                                   # no request reached the model
    assert not (tmp_path / "r").exists()                      # no run folder either


def test_a_suite_runs_what_the_model_can_serve_and_lists_the_rest(tmp_path):
    out = run_cli("run", *INC, "--model", "double-understander", "--tasks", "double_suite",
                  "--output", tmp_path / "r", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert ("not applicable to this model (skipped):\n"
            "  double_roundtrip: needs image generation\n"
            "  double_draw: needs image generation") in out.stdout
    run_dir = next((tmp_path / "r" / "double-understander").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["tasks"] == ["double_sum"]
    assert manifest["skipped"] == {"double_roundtrip": "needs image generation",
                                   "double_draw": "needs image generation"}
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["double_sum"]
    shown = run_cli("show", *INC, run_dir)
    assert shown.returncode == 0 and "double_draw: needs image generation" in shown.stdout


def test_generation_only_model_runs_its_part_of_a_suite(tmp_path, doubles):
    res = evaluate(doubles.DoubleDrawer(), ["double_suite"], RunConfig(output=tmp_path / "r", progress=False))
    assert list(res.results) == ["double_draw"] and res.results["double_draw"].metrics["accuracy"].value == 1.0
    understanding = "needs image understanding (answering questions about images)"
    assert res.skipped == {"double_sum": understanding, "double_roundtrip": understanding}
    assert res.manifest.status == "complete"


def test_nothing_left_to_run_and_task_objects_count_as_named(tmp_path, doubles):
    with pytest.raises(HarnessError, match=r"^--model double-drawer can run none of the selected tasks "
                                           r"\(vqav2_val, mmmu_val, pope, mmbench_en_dev\)"):
        evaluate(doubles.DoubleDrawer(), ["understanding"], RunConfig(output=tmp_path / "r", progress=False))
    with pytest.raises(HarnessError, match="cannot run double_sum: the task needs image understanding"):
        evaluate(doubles.DoubleDrawer(), [doubles.DoubleSum()], RunConfig(output=tmp_path / "r", progress=False))
    assert not (tmp_path / "r").exists()


def test_a_task_that_sends_an_undeclared_kind_is_stopped(tmp_path, doubles):
    class Misdeclared(doubles.DoubleRoundTrip):
        model_kinds = ("understand",)             # but its second stage generates

    with pytest.raises(HarnessError, match=r"task double_roundtrip sent the model a 'generate' request but "
                                           r"declares model_kinds = \('understand',\)"):
        evaluate(doubles.DoubleModel(), [Misdeclared()], RunConfig(output=tmp_path / "r", progress=False))


def test_every_registered_task_declares_what_it_asks_of_the_model():
    from harness import registry

    for name in registry.TASKS.names():
        kinds = registry.TASKS.load(name).model_kinds
        assert kinds and set(kinds) <= {"understand", "generate"}, name


def test_leaderboard_cells_say_not_applicable(tmp_path):
    from tests.test_leaderboard import write_run

    root = tmp_path / "results"
    run = write_run(root, "t2i-only", "run-1", {"geneval": 0.61, "wise": 0.42}, finished=100)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["skipped"] = {t: "needs image understanding (answering questions about images)"
                           for t in ("vqav2_val", "mmmu_val", "pope", "mmbench_en_dev", "unified_bench",
                                     "unified_bench_uae")}
    (run / "manifest.json").write_text(json.dumps(manifest))
    write_run(root, "unified", "run-1", {"unified_bench": 80.0, "wise": 0.40}, finished=100)
    boards, warnings = build_boards(root, ["consistency"])
    assert warnings == []
    board = boards[0]
    row = next(r for r in board.rows if r.label(board.spec) == "t2i-only")
    assert row.cells["wise"].value == pytest.approx(42.0)
    for cid in ("unified_bench", "consistency"):
        assert row.cells[cid].not_applicable and row.cells[cid].value is None
    other = next(r for r in board.rows if r.label(board.spec) == "unified")
    assert other.cells["unified_bench_uae"] is None                   # never evaluated: an empty cell
    text = markdown(board)
    line = next(x for x in text.splitlines() if x.startswith("| t2i-only |"))
    assert "not applicable" in line and "| - " not in line
    assert '"not applicable": the model cannot serve the task' in text
    # the understanding board leaves a model out when it has nothing it could be ranked on there
    und = build_boards(root, ["understanding"])[0][0]
    assert all(r.label(und.spec) != "t2i-only" for r in und.rows)
