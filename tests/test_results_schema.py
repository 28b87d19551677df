"""The results schema (harness/results.py): results folders written before the schema carried a version stay
readable, nothing in them is lost on a round trip, and every reader goes through it."""
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from harness.errors import HarnessError
from harness.results import SCHEMA_VERSION, Manifest, TaskResult, load_run, read_manifest, read_task_result

FIXTURE = Path(__file__).parent / "fixtures" / "results-unversioned"   # written by the harness before the schema
RUN = FIXTURE / "tiny-janus" / "run-917cc9c4c3"


@pytest.mark.parametrize("path", sorted(FIXTURE.glob("*/*/*/results.json")), ids=lambda p: p.parent.name)
def test_unversioned_results_read_and_round_trip_unchanged(path):
    raw = json.loads(path.read_text())
    assert "schema_version" not in raw
    result = read_task_result(path)
    assert result.to_dict() == {**raw, "schema_version": SCHEMA_VERSION}


@pytest.mark.parametrize("path", sorted(FIXTURE.glob("*/*/manifest.json")), ids=lambda p: p.parent.name)
def test_unversioned_manifests_read_and_round_trip_unchanged(path):
    raw = json.loads(path.read_text())
    manifest = read_manifest(path)
    assert manifest.to_dict() == {**raw, "schema_version": SCHEMA_VERSION}
    assert manifest.status == "complete" and manifest.tasks == raw["tasks"]


def test_typed_values_of_a_stored_run():
    manifest, results = load_run(RUN)
    assert set(results) == {"vqav2_val", "pope", "wise", "unified_bench", "mmbench_en_dev"}
    vqa = results["vqav2_val"]
    assert vqa.headline == "accuracy" and vqa.dataset.source == "shapes" and vqa.dataset.n_evaluated == 3
    assert vqa.display_value() == pytest.approx(vqa.metrics["accuracy"].value * 100)
    assert results["unified_bench"].scale() == 1.0                         # stored on 0-100 already
    assert results["wise"].metric("overall").value is None                  # refused on 3 of the 50 prompts


def test_show_and_leaderboards_read_the_old_folder(tmp_path):
    store = tmp_path / "results"
    shutil.copytree(FIXTURE, store)
    shown = run_cli("show", store / "tiny-janus" / "run-917cc9c4c3")
    assert shown.returncode == 0, shown.stderr
    assert "vqav2_val" in shown.stdout and "world:vqav2@1" in shown.stdout
    from harness.leaderboard import build_boards

    boards, warnings = build_boards(store, ["understanding_world"])
    assert warnings == []
    cells = [row.cells.get("vqav2") for row in boards[0].rows]
    assert any(c is not None and c.notes and "--limit" in c.notes[0] for c in cells)   # limited runs never fill


def test_a_newer_schema_is_refused_in_one_line(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**json.loads((RUN / "pope" / "results.json").read_text()), "schema_version": 99}))
    with pytest.raises(HarnessError, match=r"schema_version 99 is newer than this harness reads \(1\)"):
        read_task_result(path)


@pytest.mark.parametrize("manifest, field", [([], "not a run manifest"), ({"run_id": "r", "tasks": "pope"},
                                                                          "'tasks' must be a list")])
def test_malformed_manifests_give_one_line(tmp_path, manifest, field):
    run = tmp_path / "m" / "run"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps(manifest))
    proc = run_cli("show", run)
    assert proc.returncode == 2 and field in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_fields_unknown_to_this_version_are_kept():
    raw = {**json.loads((RUN / "pope" / "results.json").read_text()), "from_a_plugin": {"x": 1}}
    assert TaskResult.from_dict(raw).to_dict()["from_a_plugin"] == {"x": 1}
    m = {**json.loads((RUN / "manifest.json").read_text()), "cluster": "a"}
    assert Manifest.from_dict(m).to_dict()["cluster"] == "a"


def test_new_runs_write_the_schema_version(tmp_path, doubles):
    from harness.api import RunConfig, evaluate

    res = evaluate("double-model", ["double_sum"], RunConfig(output=tmp_path, limit=2, progress=False))
    assert json.loads((res.run_dir / "double_sum" / "results.json").read_text())["schema_version"] == 1
    assert json.loads((res.run_dir / "manifest.json").read_text())["schema_version"] == 1
