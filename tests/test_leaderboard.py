"""Leaderboards from a results store written in the engine's real format (tests/leaderboard_store.py)."""
from __future__ import annotations

import json

import pytest

from harness.leaderboard import build_all, build_boards
from harness.leaderboard.render import markdown, to_json
from leaderboard_store import JANUS, make_store, scaled, task_result, write_run


@pytest.fixture()
def store(tmp_path):
    return make_store(tmp_path / "results")


def board(store, name, **kw):
    boards, warnings = build_boards(store, [name], **kw)
    assert warnings == []
    return boards[0]


def test_build_twice_is_byte_identical(store, tmp_path):
    from harness.leaderboard import write_boards
    from harness.leaderboard.render import to_csv, to_json

    def texts():
        boards, _ = build_boards(store, include_reported=True)
        assert len(boards) == 12
        return [f(b) for b in boards for f in (markdown, to_csv, to_json)]

    assert texts() == texts()
    # the page too, plots included (fixed SVG hash salt, no dates), here for one board to keep the test fast
    pages = []
    for out in ("a", "b"):
        write_boards(build_boards(store, ["consistency"], include_reported=True)[0], tmp_path / out)
        pages.append((tmp_path / out / "index.html").read_bytes())
    assert pages[0] == pages[1]


def test_golden_robustness_table(tmp_path):
    root = tmp_path / "results"
    write_run(root, "model-a", "run-1", {"naturalbench": task_result("naturalbench", 0.738, 0.0125),
                                         "advqa_val": 0.342}, finished=10)
    write_run(root, "model-b", "run-1", {"naturalbench": 0.786, "advqa_val": task_result("advqa_val", 0.3, n=10,
                                                                                         n_total=20)}, finished=20)
    build_all(root, tmp_path / "out", ["robustness"])
    assert (tmp_path / "out" / "robustness.md").read_text() == GOLDEN_MD
    assert (tmp_path / "out" / "robustness.csv").read_text() == GOLDEN_CSV


GOLDEN_MD = """\
# Robustness

NaturalBench (G-Acc, natural adversarial pairs) and AdVQA (human-adversarial questions).

Real benchmark data only; numbers from the embedded shapes world are never shown here. Every cell requires data \
source 'hub', scoring profile 'official', the newest task version in the store, the whole dataset (no --limit).

| Model | NaturalBench G-Acc | AdVQA |
|---|---:|---:|
| model-b | 78.60 | - [1] |
| model-a | 73.80 ± 1.25 | 34.20 |

± is the standard error of the benchmark mean. Empty cell: not evaluated. `-` with a note: results exist but do \
not meet the column's requirements, or have no value; they are never mixed in.

Columns:
- NaturalBench G-Acc (Robustness): naturalbench g_acc; data: hub:BaiqiL/NaturalBench@a1b2c3d4
- AdVQA (Robustness): advqa_val accuracy; data: hub:facebook/advqa@a1b2c3d4

Notes:
[1] AdVQA: evaluated 10 of 20 documents (--limit); the table needs the whole set
"""
GOLDEN_CSV = """\
model,seeds,reported,naturalbench,naturalbench_stderr,naturalbench_spread,naturalbench_note,advqa,advqa_stderr,\
advqa_spread,advqa_note
model-b,,no,78.6,,,,,,,AdVQA: evaluated 10 of 20 documents (--limit); the table needs the whole set
model-a,,no,73.8,1.25,,,34.2,,,
"""


def test_build_all_writes_every_board_and_one_page(store, tmp_path):
    names = ["understanding", "training_curves", "post_training_world"]
    written = build_all(store, tmp_path / "out", names=names)
    tables = [f"{n}.{s}" for n in names for s in ("md", "csv", "json")]
    assert sorted(p.name for p in written) == sorted(tables + ["index.html", "understanding-plot1.svg",
                                                               "training_curves-plot1.svg"])
    assert (tmp_path / "out" / "training_curves-plot1.svg").read_text().startswith("<?xml")
    page = (tmp_path / "out" / "index.html").read_text()
    assert all(f'id="{n}"' in page for n in names) and "<svg" not in page
    assert page.count('<img class="plot"') == 2             # bars and curves; the empty world board draws none
    assert 'alt="Training curves"' in page
    assert "No stored results meet this table's requirements yet." in page
    assert (tmp_path / "out" / "post_training_world.md").read_text().count("No stored results") == 1
    assert not any(x in page for x in ('src="http', 'href="http', "@import", "url(http"))


def cells(board, label):
    rows = [r for r in board.rows if r.label(board.spec) == label]
    assert len(rows) == 1, [r.label(board.spec) for r in board.rows]
    return rows[0].cells


def test_mismatched_cells_are_blanked_with_their_reason(store):
    und = board(store, "understanding")
    other = cells(und, "other-model")
    assert other["vqav2"].value == pytest.approx(70.0) and other["vqav2"].stderr == pytest.approx(0.4)
    expected = {"mmmu": "MMMU: scoring profile 'lmms'; the column needs 'official'",
                "mmbench": "MMBench: task version '0'; the column needs '1'",
                "pope": "POPE: data source 'path'; the column needs 'hub'",
                "overall": "Overall needs a value for MMMU, MMBench, POPE (see their cells)"}
    text = markdown(und)
    for cid, note in expected.items():
        assert other[cid].value is None and other[cid].notes == [note]
        assert f"[{other[cid].note_ids[0]}] {note}" in text
    assert "| other-model | 70.00 ± 0.40 | - [1] | - [2] | - [3] | - [4] |" in text
    # the newest run of janus-pro-7b is unfinished; the embedded world never reaches a real board
    assert cells(und, "janus-pro-7b")["vqav2"].value == pytest.approx(78.2)
    assert "tiny-janus" not in text
    cons = cells(board(store, "consistency"), "other-model")
    assert cons["unified_bench"].notes == ["UnifiedBench: UnifiedBench backbone set 'uae'; the column needs 'unigame'"]
    assert cons["wise"].notes == ["WISE: judge 'qwen2.5-vl-72b'; the column needs 'gpt-4o-2024-05-13'"]
    assert cells(board(store, "robustness"), "other-model")["advqa"].notes == [
        "AdVQA: evaluated 10 of 1000 documents (--limit); the table needs the whole set"]


def test_world_boards_hold_only_world_numbers(store):
    world = board(store, "understanding_world", include_reported=True)
    assert [r.label(world.spec) for r in world.rows] == ["tiny-janus"]
    assert "Embedded shapes world only" in markdown(world)
    assert world.data_labels("vqav2") == ["world:vqav2_val@world-v1"]
    # the world's rule judge and scene similarity have no GPT-4o or backbone-set identity to check
    assert cells(board(store, "consistency_world"), "tiny-janus")["consistency"].value == pytest.approx(50.0)


def test_aggregates_reproduce_unigame_tables(store):
    cons = board(store, "consistency", include_reported=True)
    janus = cells(cons, "janus-pro-7b")
    assert janus["overall"].value == pytest.approx(71.45)              # UniGame prints 71.4
    assert abs(janus["overall"].value - 71.4) <= 0.05 + 1e-9
    assert round(janus["consistency"].value, 2) == 63.66               # 0.6 x 82.77 + 0.4 x 35
    published = {"Janus-Pro-7B": (71.45, 63.66), "Janus-Pro-7B + SFT": (71.95, 64.72),
                 "Janus-Pro-7B + UniGame": (75.0, 68.32)}
    for label, (overall, consistency) in published.items():
        row = cells(cons, label)
        assert row["overall"].value == pytest.approx(overall)
        assert round(row["consistency_uae"].value, 2) == consistency
        assert row["overall"].notes == [] and row["consistency_uae"].notes == []
        # UniGame's UnifiedBench is UAE's backbone set: never shown under the CLIP/SigLIP/DINOv2/DreamSim column
        assert row["unified_bench"].value is None and "backbone set 'uae'" in row["unified_bench"].notes[0]
    world = cells(board(store, "understanding_world"), "tiny-janus")["overall"]
    assert world.stderr == pytest.approx(0.5)                          # four independent 1.0 errors, averaged


def test_post_training_rows_deltas_and_seeds(store):
    post = board(store, "post_training", include_reported=True)
    assert [(r.fields["base_model"], r.fields["method"], r.fields["step"], r.reported) for r in post.rows][2:] == [
        ("Janus-Pro-7B", "base", 0, False), ("Janus-Pro-7B", "base", 0, True),
        ("Janus-Pro-7B", "sft", 16000, False), ("Janus-Pro-7B", "sft", 16000, True),
        ("Janus-Pro-7B", "unigame", 16000, False), ("Janus-Pro-7B", "unigame", 16000, True)]
    base, _, sft, _, uni, uni_rep = post.rows[2:]
    assert sft.seeds == ["0", "1"] and sft.cells["vqav2"].value == pytest.approx(79.7)      # step 16000 only
    assert sft.cells["vqav2"].spread == pytest.approx(0.7071, abs=1e-4)
    assert base.cells["vqav2"].deltas == {} and sft.cells["vqav2"].deltas == {"base": pytest.approx(1.5)}
    assert uni.cells["vqav2"].deltas == {"base": pytest.approx(5.0), "sft": pytest.approx(3.5)}
    assert uni.cells["consistency"].deltas == {"base": pytest.approx(5.0), "sft": pytest.approx(3.5)}
    # a paper's rows are compared with the same paper's rows only
    assert uni_rep.cells["vqav2"].deltas == {"base": pytest.approx(5.2), "sft": pytest.approx(3.9)}
    assert uni_rep.cells["overall"].deltas == {"base": pytest.approx(3.55), "sft": pytest.approx(3.05)}
    text = markdown(post)
    assert "| Janus-Pro-7B | unigame | 16000 | 0 | measured | 83.20 (Δbase +5.00, Δsft +3.50) |" in text
    assert "| *Janus-Pro-7B* | *unigame* | *16000* |  | reported [" in text
    harmon = [r for r in post.rows if r.fields["base_model"] == "Harmon-1.5B + RecA"]
    assert harmon[1].cells["unified_bench_uae"].deltas == {"base": pytest.approx(1.27)}
    assert not any(r.reported for r in board(store, "post_training").rows)


def test_deltas_match_methods_trained_with_the_same_departures(tmp_path):
    """A unigame row trained at und_lr 5e-4 is compared with the sft row at that learning rate, not with an sft
    at another one; a row whose reference is ambiguous gets no delta rather than a wrong one."""
    root = tmp_path / "results"
    tags = {"base_model": "tiny", "seed": "0", "step": "300"}
    runs = {"base": 0.0, "sft(und_lr=0.0005)": 1.0, "sft(und_lr=0.001)": 3.0, "sft": 2.0,
            "unigame(filter=none,und_lr=0.0005)": 4.0, "unigame(eps=0.05,lora_r=8)": 6.0}
    for i, (method, bump) in enumerate(runs.items()):
        write_run(root, f"m{i}", "run-1", scaled(bump), finished=100 + i,
                  tags={**tags, "method": method, "step": "0" if method == "base" else "300"})
    write_run(root, "m9", "run-1", scaled(9.0), finished=120, tags={**tags, "method": "sft(lora_r=8)"})
    write_run(root, "m10", "run-1", scaled(9.0), finished=121, tags={**tags, "method": "sft(eps=0.05)"})
    rows = {r.fields["method"]: r.cells["vqav2"].deltas for r in board(root, "post_training").rows}
    assert rows["unigame(filter=none,und_lr=0.0005)"] == {"base": pytest.approx(4.0), "sft": pytest.approx(3.0)}
    assert rows["sft(und_lr=0.0005)"] == {"base": pytest.approx(1.0)}
    assert rows["unigame(eps=0.05,lora_r=8)"] == {"base": pytest.approx(6.0)}    # two sft rows qualify equally


def test_training_curves_by_run_and_step(store):
    curves = board(store, "training_curves")
    assert [(r.fields["train_run"], r.fields["step"]) for r in curves.rows] == [
        ("sft-s0", 8000), ("sft-s0", 16000), ("sft-s1", 8000), ("sft-s1", 16000), ("unigame-s0", 8000),
        ("unigame-s0", 16000)]
    assert [round(r.cells["overall"].value, 2) for r in curves.rows] == [71.45, 72.45, 71.45, 73.45, 73.45, 76.45]
    assert curves.rows[-1].cells["consistency"].value == pytest.approx(0.6 * 87.77 + 0.4 * 40)
    assert "Training run | Step | Seeds |" in markdown(curves)


def test_seeds_on_different_data_are_not_averaged(tmp_path):
    root = tmp_path / "results"
    for seed, source in (("0", "hub"), ("1", "hub")):
        res = task_result("naturalbench", 0.7 + int(seed) / 10, source=source)
        res["dataset"]["revision"] = f"rev{seed}0000000"
        write_run(root, f"m{seed}", "r", {"naturalbench": res}, finished=1,
                  tags={"base_model": "b", "method": "sft", "step": "10", "seed": seed})
    cell = cells(board(root, "post_training"), "b / sft / 10")["naturalbench"]
    assert cell.value is None and cell.notes[0].startswith("seeds were evaluated on different data")


def test_cli_builds_and_reports_bad_names(store, tmp_path, capsys):
    from harness.cli import main

    out = tmp_path / "cli-out"
    assert main(["leaderboard", "robustness", "--results", str(store), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"built 1 board (5 files) in {out}; open {out / 'index.html'}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"robustness.{s}" for s in ("md", "csv", "json")] + ["robustness-plot1.svg", "index.html"])
    assert oct((out / "index.html").stat().st_mode & 0o777) == "0o644"
    # no --out: the store's own leaderboards folder, where `run` and `unigame train` write them too
    assert main(["leaderboard", "understanding", "robustness", "--results", str(store)]) == 0
    default = store / "leaderboards"
    assert capsys.readouterr().out.strip() == f"built 2 boards (9 files) in {default}; open {default / 'index.html'}"
    assert main(["leaderboard", "robustnes", "--results", str(store), "--out", str(out)]) == 2
    assert "did you mean 'robustness'" in capsys.readouterr().err
    assert main(["leaderboard", "--all", "--results", str(tmp_path / "nowhere")]) == 2
    assert "no such results folder" in capsys.readouterr().err


@pytest.mark.parametrize("text, error", [
    ("title: A\ncolumns: [{task: pope, lable: POPE}]", r"a.yaml: columns\[0\]: unknown key 'lable'"),
    ("columns: [pope]", "'pope' is not defined under columns in columns.yaml"),
    ("columns: [{task: pope}]\naggregates: [{id: x, kind: median, inputs: {a: pope}}]",
     r"aggregates\[0\]: unknown aggregate kind 'median'"),
    ("requires: {sorce: hub}\ncolumns: [{task: pope}]", "a.yaml: requires: unknown requirement 'sorce'"),
])
def test_spec_errors_name_the_file_and_key(tmp_path, text, error):
    from harness.errors import HarnessError
    from harness.leaderboard.spec import load_specs

    (tmp_path / "a.yaml").write_text(text + "\n")
    with pytest.raises(HarnessError, match=error):
        load_specs(tmp_path)


def test_tasks_a_model_cannot_serve_read_not_applicable(tmp_path):
    """An understanding-only model's run skipped the generation tasks: those cells (and the aggregates built on
    them) say "not applicable", never a number and never a blank that looks like a missing run."""
    root = tmp_path / "results"
    und = {t: JANUS[t] for t in ("vqav2_val", "mmmu_val", "mmbench_en_dev", "pope")}
    run = write_run(root, "qwen-vl", "run-1", und, finished=100)
    manifest = json.loads((run / "manifest.json").read_text())
    why = "needs image generation, which the model lacks (it only does understanding)"
    manifest["skipped"] = {"geneval": why, "wise": why, "unified_bench": why}
    (run / "manifest.json").write_text(json.dumps(manifest))
    write_run(root, "janus-pro-7b", "run-1", JANUS, finished=200)

    gen = board(root, "generation")
    qwen = cells(gen, "qwen-vl")
    assert qwen["geneval"].not_applicable and qwen["geneval"].value is None
    text = markdown(gen)
    row = next(line for line in text.splitlines() if line.startswith("| qwen-vl |"))
    assert "not applicable" in row and not any(ch.isdigit() for ch in row.split("|")[2].split("[")[0])
    assert "the model lacks what the task needs" in text
    cons = cells(board(root, "consistency"), "qwen-vl")
    assert cons["unified_bench"].not_applicable and cons["wise"].not_applicable
    assert cons["consistency"].not_applicable and cons["consistency"].value is None
    assert cons["overall"].value == pytest.approx(cells(board(root, "understanding"), "qwen-vl")["overall"].value)
    # a model that did run the task keeps its number; one that never ran it keeps an empty cell
    assert cells(gen, "janus-pro-7b")["geneval"].value == pytest.approx(80.0)
    assert not cells(gen, "janus-pro-7b")["geneval"].not_applicable
    assert json.loads(to_json(gen))["rows"][1]["cells"]["geneval"]["not_applicable"] is True


def test_an_aggregate_names_inputs_not_evaluated_apart_from_inputs_without_a_value():
    from types import SimpleNamespace

    from harness.leaderboard.cells import Cell, aggregate

    col = SimpleNamespace(kind="consistency_score", label="Consistency")
    labels = {"unified_bench": "UnifiedBench", "wise": "WISE"}
    undefined = Cell(notes=["wise overall is undefined for this model's answers"], source="shapes")
    assert aggregate(col, {"unified_bench": None, "wise": undefined}, labels).notes == \
        ["Consistency needs UnifiedBench (not evaluated) and a value for WISE (see its cell)"]
    measured = Cell(value=50.0, source="shapes")
    assert aggregate(col, {"unified_bench": None, "wise": measured}, labels).notes == \
        ["Consistency needs UnifiedBench (not evaluated)"]
    ub = Cell(value=80.0, source="hub")
    legacy = aggregate(col, {"unified_bench": ub, "wise": Cell(value=35.0, source="hub", profile="legacy")}, labels)
    assert legacy.value == pytest.approx(0.6 * 80 + 0.4 * 35)
    verified = aggregate(col, {"unified_bench": ub, "wise": Cell(value=50.0, source="hub", profile="verified")},
                         labels)
    assert verified.value is None and verified.notes == [
        "Consistency: wise.overall of profile verified is not what the formula takes (profile legacy or lmms)"]


def test_checkpoints_named_alike_in_different_runs_are_rows_of_their_own(tmp_path):
    """Trainer checkpoints of two base models share a name (sft-s0-step000300), so their results share a store
    folder; each keeps its own row and numbers, labelled as the user named it."""
    root = tmp_path / "results"
    folder = "sft-s0-step000300"
    write_run(root, folder, "run-a", {"vqav2_val": 0.61}, finished=100, spec="runs/a/sft-s0-step000300",
              path="/work/runs/a/sft-s0-step000300")
    write_run(root, folder, "run-b", {"vqav2_val": 0.72}, finished=200, spec="runs/b/sft-s0-step000300",
              path="/work/runs/b/sft-s0-step000300")
    # the same relative spelling from another working folder: a third model, told apart by where it resolved
    write_run(root, folder, "run-c", {"vqav2_val": 0.83}, finished=300, spec="runs/a/sft-s0-step000300",
              path="/elsewhere/runs/a/sft-s0-step000300")
    b = board(root, "understanding")
    assert cells(b, "runs/b/sft-s0-step000300")["vqav2"].value == pytest.approx(72.0)
    assert cells(b, "runs/a/sft-s0-step000300 (/work/runs/a/sft-s0-step000300)")["vqav2"].value == pytest.approx(61.0)
    assert cells(b, "runs/a/sft-s0-step000300 (/elsewhere/runs/a/sft-s0-step000300)")["vqav2"].value == \
        pytest.approx(83.0)
