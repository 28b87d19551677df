"""lmms-eval interoperation: our models inside lmms-eval, and lmms-eval results imported into our store.

The import tests run everywhere (no lmms-eval needed). The others need the optional extra
(`pip install -e ".[lmms]"`) and SKIP without it, since CI's default install does not include lmms-eval. They run
lmms-eval offline on a custom task written here (a task YAML + utils.py + a local JSONL file and PNG images) with
the test double `double-model` (tests/doubles.py) behind the wrapper; the bundled tiny-janus is used too when its
weights are present.
"""
import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from conftest import DOUBLES, ROOT, run_cli

HAS_LMMS = importlib.util.find_spec("lmms_eval") is not None
needs_lmms = pytest.mark.skipif(not HAS_LMMS, reason="lmms-eval is not installed: it is the optional extra "
                                "`pip install -e '.[lmms]'`, which CI's default install leaves out")

BOARD = """title: lmms-eval imports
requires: {source: lmms-eval, profile: lmms}
rows: {by: model}
columns: %s
"""


def build_board(store: Path, tmp_path: Path, columns: list[dict]) -> str:
    """A leaderboard over the imported results (source lmms-eval, profile lmms); its Markdown."""
    from harness.leaderboard import build_all

    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "lmms.yaml").write_text(BOARD % json.dumps(columns))
    written = build_all(store, tmp_path / "boards", spec_dir=specs)
    return next(p for p in written if p.name == "lmms.md").read_text()


# ---------------------------------------------------------------------------------------- import (no lmms-eval)
def _entry(metrics: dict, alias: str) -> dict:
    out = {"alias": alias}
    for name, (value, stderr) in metrics.items():
        out[f"{name},none"] = value
        out[f"{name}_stderr,none"] = stderr
        out[f"{name}_stderr_clt,none"] = 0.01 if value is not None else "N/A"
        out[f"{name}_stderr_clustered,none"] = "N/A"
    return out


def _config(task: str, path: str, split: str, metrics: list[str], version) -> dict:
    return {"task": task, "dataset_path": path, "dataset_kwargs": {"token": True}, "test_split": split,
            "full_docs": False, "process_results_use_image": False,
            "doc_to_visual": "<function doc_to_visual at 0x7f00>", "doc_to_text": "<function doc_to_text at 0x7f00>",
            "doc_to_target": "answer", "process_results": "<function process_results at 0x7f00>",
            "description": "", "target_delimiter": " ", "fewshot_delimiter": "\n\n", "num_fewshot": 0,
            "metric_list": [{"metric": m, "aggregation": "<function agg at 0x7f00>", "higher_is_better": True}
                            for m in metrics],
            "output_type": "generate_until",
            "generation_kwargs": {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0, "num_beams": 1,
                                  "do_sample": False, "until": ["\n\n"]},
            "repeats": 1, "should_decontaminate": False, "score_key": "score", "metadata": version,
            "auto_strip_thinking": False}


# A results file as lmms-eval 0.7.3 writes it (`<date>_results.json`), for five benchmarks we also implement and
# one we do not. Custom aggregations get "N/A" stderrs, as lmms-eval gives them.
TASKS = {  # lmms task: (dataset_path, split, {metric: (value, stderr)}, metadata, n original, n effective)
    "pope": ("lmms-lab-encoder/POPE", "test", {"pope_accuracy": (0.85, "N/A"), "pope_precision": (0.9, "N/A"),
             "pope_recall": (0.8, "N/A"), "pope_f1_score": (0.8470588, "N/A"), "pope_yes_ratio": (0.5, "N/A")},
             [{"version": 0.0}], 9000, 9000),
    "mmmu_val": ("lmms-lab-encoder/MMMU", "validation", {"mmmu_acc": (0.41111, "N/A")}, {"version": 0.0}, 900, 900),
    "vqav2_val": ("lmms-lab-encoder/VQAv2", "validation", {"exact_match": (0.782, 0.0009)}, None, 214354, 1000),
    "mmbench_en_dev": ("lmms-lab-encoder/MMBench", "dev",
                       {"gpt_eval_score": (79.2, "N/A"), "submission": (None, "N/A")}, None, 4329, 4329),
    "naturalbench": ("BaiqiL/NaturalBench-lmms-eval", "test", {"naturalbench_G_ACC": (0.2, "N/A"),
                     "naturalbench_Q_ACC": (0.4, "N/A"), "naturalbench_I_ACC": (0.45, "N/A")}, None, 7600, 7600),
    "textvqa_val": ("lmms-lab/textvqa", "validation", {"exact_match": (0.5, 0.005)}, None, 5000, 5000),
}


def lmms_results_073() -> dict:
    results, configs, versions, n_samples, hib = {}, {}, {}, {}, {}
    for task, (path, split, metrics, meta, total, used) in TASKS.items():
        results[task] = _entry(metrics, task)
        configs[task] = _config(task, path, split, list(metrics), meta)
        versions[task] = meta["version"] if isinstance(meta, dict) else "Yaml"
        n_samples[task] = {"original": total, "effective": used}
        hib[task] = {m: True for m in metrics}
    return {
        "results": results, "group_subtasks": {t: [] for t in TASKS}, "configs": configs, "versions": versions,
        "n-shot": {t: 0 for t in TASKS}, "higher_is_better": hib, "n-samples": n_samples,
        "config": {"model": "llava_hf", "model_args": "pretrained=llava-hf/llava-1.5-7b-hf",
                   "model_backend": "lmms_eval.models.simple.llava_hf.LlavaHf (simple)", "batch_size": "1",
                   "batch_sizes": [], "device": None, "use_cache": None, "limit": None, "offset": 0,
                   "bootstrap_iters": 100000, "process_docs_parallel": 4, "gen_kwargs": "", "random_seed": 0,
                   "numpy_seed": 1234, "torch_seed": 1234, "fewshot_seed": 1234,
                   "resolved_cli_args": {"model": "llava_hf", "tasks": ",".join(TASKS), "timezone": "Asia/Singapore",
                                         "batch_size": "1", "log_samples": True}},
        "git_hash": None, "git_branch": None, "lmms_eval_version": "unknown@unknown", "date": "20261101_120000",
        "usage": {}, "task_hashes": {t: "ab" * 32 for t in TASKS}, "model_source": "llava_hf",
        "model_name": "llava-hf/llava-1.5-7b-hf", "model_name_sanitized": "llava-hf__llava-1.5-7b-hf",
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": False,
        "chat_template": None, "chat_template_sha": None, "start_time": 1890.1, "end_time": 1990.6,
        "total_evaluation_time_seconds": "100.5",
    }


def write_lmms_output(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['date']}_results.json"
    path.write_text(json.dumps(data, indent=2))
    (folder / f"{data['date']}_samples_pope.jsonl").write_text(
        json.dumps({"doc_id": 0, "target": "yes", "filtered_resps": "yes", "pope_accuracy": {"score": 1.0}}) + "\n")
    return path


def _imported(store: Path) -> tuple[Path, dict, dict]:
    [run] = list(store.glob("*/*/manifest.json"))
    manifest = json.loads(run.read_text())
    results = {t: json.loads((run.parent / t / "results.json").read_text()) for t in manifest["tasks"]}
    return run.parent, manifest, results


def test_import_lmms_results(tmp_path):
    src = write_lmms_output(tmp_path / "lmms_out" / "llava-hf__llava-1.5-7b-hf", lmms_results_073())
    store = tmp_path / "results"
    r = run_cli("import-lmms", src, "--output", store)
    assert r.returncode == 0, r.stderr
    assert "POPE: exact match" in r.stdout
    run_dir, manifest, res = _imported(store)
    assert run_dir.parent.name == "llava-hf__llava-1.5-7b-hf"
    assert manifest["producer"] == "lmms-eval" and manifest["status"] == "complete"
    assert set(res) == {"pope", "mmmu_val", "vqav2_val", "mmbench_en_dev", "naturalbench", "textvqa_val"}
    for task, r_ in res.items():
        assert r_["producer"] == "lmms-eval" and r_["profile"] == "lmms"
        assert r_["dataset"]["source"] == "lmms-eval" and r_["dataset"]["name"] == TASKS[task][0]
        assert r_["model"]["spec"] == "llava-hf/llava-1.5-7b-hf" and r_["model"]["name"] == "llava_hf"
        assert r_["lmms_eval"]["version_string"] == "unknown@unknown" and r_["lmms_eval"]["task"] == task
        assert r_["headline"] in r_["metrics"]
    vqa = res["vqav2_val"]
    assert vqa["metrics"]["exact_match"] == {"value": 0.782, "stderr": 0.0009, "n": 1000}
    assert vqa["metrics"]["accuracy"]["value"] == 0.782 and vqa["headline"] == "accuracy"
    assert vqa["dataset"]["n_total"] == 214354 and vqa["dataset"]["n_evaluated"] == 1000
    assert any("always normalises" in n for n in vqa["scoring_notes"])
    pope = res["pope"]
    assert pope["metrics"]["pope_f1_score"]["stderr"] is None          # "N/A" in lmms-eval
    assert "f1" not in pope["metrics"]                                   # pooled F1 is not our mean-of-splits f1
    assert pope["version"] == "0.0"                                      # read from the YAML's metadata list
    assert any("yes_ratio is the ground-truth ratio" in n for n in pope["scoring_notes"])
    assert (run_dir / "pope" / "lmms_samples.jsonl").is_file() and pope["files"] == ["lmms_samples.jsonl"]
    mmb = res["mmbench_en_dev"]
    assert mmb["metrics"]["gpt_eval_score"]["scale"] == 1.0              # lmms-eval stores it x100
    assert mmb["metrics"]["circular_accuracy"]["value"] == pytest.approx(0.792)
    assert mmb["details"]["lmms_extra"]["submission"] is None and "submission" not in mmb["metrics"]
    assert any("issue #1436" in n for n in res["mmmu_val"]["scoring_notes"])   # version unknown: say so
    assert res["naturalbench"]["metrics"]["g_acc"]["value"] == 0.2
    assert any("naturalbench_Acc" in n for n in res["naturalbench"]["scoring_notes"])
    assert res["textvqa_val"]["scoring_notes"] == [] and res["textvqa_val"]["headline"] == "exact_match"

    shown = run_cli("show", run_dir)
    assert shown.returncode == 0 and "lmms-eval:lmms-lab-encoder/POPE" in shown.stdout

    board = build_board(store, tmp_path, [{"task": "vqav2_val", "metric": "accuracy", "label": "VQAv2"},
                                          {"task": "mmbench_en_dev", "metric": "circular_accuracy", "label": "MMB"},
                                          {"task": "pope", "metric": "pope_f1_score", "label": "POPE pooled F1"}])
    assert "llava-hf/llava-1.5-7b-hf" in board and "78.20" in board and "79.20" in board and "84.71" in board


def test_import_lmms_version_flag_and_reimport(tmp_path):
    src = write_lmms_output(tmp_path / "out", lmms_results_073())
    store = tmp_path / "results"
    for _ in range(2):    # re-importing the same file replaces its run instead of adding a second one
        assert run_cli("import-lmms", src, "--output", store, "--lmms-version", "0.7.3").returncode == 0
    _, manifest, res = _imported(store)
    assert manifest["lmms_eval"]["version"] == "0.7.3"
    assert not any("#1436" in n for n in res["mmmu_val"]["scoring_notes"])   # fixed in 0.7.3


def test_import_lmms_keeps_tokens_and_keys_out_of_the_store(tmp_path):
    """An HF token or API key in lmms-eval's model_args (or its CLI arguments) never reaches the store."""
    data = lmms_results_073()
    token, key = "hf_" + "T0KEN" * 6, "sk-" + "K3Y" * 8
    args = f"pretrained=llava-hf/llava-1.5-7b-hf,token={token},api_key={key},max_new_tokens=16,use_auth_token=True"
    data["config"]["model_args"] = args
    data["config"]["resolved_cli_args"].update(model_args=args, hf_token=token, headers=[f"Bearer {key}"])
    store = tmp_path / "results"
    r = run_cli("import-lmms", write_lmms_output(tmp_path / "out", data), "--output", store)
    assert r.returncode == 0, r.stderr
    written = "".join(p.read_text() for p in store.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl"))
    assert token not in written and key not in written and "T0KEN" not in written and "K3Y" not in written
    _, manifest, res = _imported(store)
    assert manifest["model"]["model_args"] == ("pretrained=llava-hf/llava-1.5-7b-hf,token=[redacted],"
                                               "api_key=[redacted],max_new_tokens=16,use_auth_token=True")
    assert res["pope"]["model"]["spec"] == "llava-hf/llava-1.5-7b-hf"       # the identity is untouched


def test_import_lmms_rejects_other_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"task": "pope", "metrics": {}}))
    r = run_cli("import-lmms", bad, "--output", tmp_path / "results")
    assert r.returncode != 0 and "not an lmms-eval results file" in r.stderr
    r = run_cli("import-lmms", tmp_path / "missing.json", "--output", tmp_path / "results")
    assert r.returncode != 0 and "no such file" in r.stderr


# --------------------------------------------------------------------------------------- inside lmms-eval
@needs_lmms
def test_entry_point_registers_model():
    from lmms_eval.models import get_model

    from harness.integrations.lmms import HarnessLMMS

    assert get_model("umm_harness") is HarnessLMMS and get_model("harness") is HarnessLMMS


def _instances(n: int, gen: dict, start: int = 0):
    from lmms_eval.api.instance import Instance

    return [Instance("generate_until", ("describe", copy.deepcopy(gen), lambda doc: [doc["image"]], i, "t", "test"),
                     idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1}) for i in range(start, start + n)]


@needs_lmms
def test_wrapper_batches_by_requested_size(tmp_path):
    from harness.integrations.lmms import HarnessLMMS
    from doubles import read_log

    log = tmp_path / "log.jsonl"
    lm = HarnessLMMS(checkpoint="double-model", include=DOUBLES, log=str(log), batch_size="2")
    lm.task_dict = {"t": {"test": [{"image": PILImage.new("RGB", (4, 4), (i, 2 * i, 3))} for i in range(8)]}}
    greedy = {"max_new_tokens": 8, "temperature": 0, "do_sample": False, "until": [" 3"]}
    sampled = {"max_new_tokens": 8, "temperature": 0.7, "do_sample": True, "until": ["\n\n"]}
    reqs = _instances(3, greedy) + _instances(3, sampled, 3) + _instances(2, greedy, 6)
    out = lm.generate_until(reqs)
    # one call never mixes decoding settings; each call holds batch_size requests but a group's last
    assert [e["n"] for e in read_log(log)] == [2, 2, 1, 2, 1]
    assert out[:3] == ["colour 0 0", "colour 1 2", "colour 2 4"]            # cut at the stop string " 3"
    assert out[3:6] == [f"colour {i} {2 * i} 3" for i in range(3, 6)] and out[6] == "colour 6 12"
    with pytest.raises(NotImplementedError, match="log-likelihood"):
        lm.loglikelihood(reqs)


@needs_lmms
def test_wrapper_halves_a_batch_that_runs_out_of_memory(tmp_path, capsys):
    from harness.integrations.lmms import HarnessLMMS
    from doubles import read_log

    log = tmp_path / "log.jsonl"
    lm = HarnessLMMS(checkpoint="double-oom-model", include=DOUBLES, log=str(log), fits="2", batch_size="8")
    lm.task_dict = {"t": {"test": [{"image": PILImage.new("RGB", (4, 4), (i, 2 * i, 3))} for i in range(12)]}}
    greedy = {"max_new_tokens": 8, "temperature": 0, "do_sample": False, "until": ["\n"]}
    out = lm.generate_until(_instances(12, greedy))
    # the real CPU allocator fails the batches of 8 and 4; later calls start at the size that fitted
    assert [e["tried"] for e in read_log(log) if "tried" in e] == [8, 4, 2, 2, 2, 2, 2, 2]
    assert out == [f"colour {i} {2 * i} 3" for i in range(12)] and lm.failed == 0
    assert "out of memory with 8 requests in a batch; going on in batches of at most 4" in capsys.readouterr().err


@needs_lmms
def test_wrapper_raises_what_halving_cannot_fix(tmp_path):
    from harness.integrations.lmms import HarnessLMMS

    lm = HarnessLMMS(checkpoint="double-oom-model", include=DOUBLES, fits="4", never_fits="describe",
                     batch_size="4")
    lm.task_dict = {"t": {"test": [{"image": PILImage.new("RGB", (4, 4), (i, i, i))} for i in range(4)]}}
    greedy = {"max_new_tokens": 8, "temperature": 0, "do_sample": False, "until": ["\n"]}
    # a request that fits in no batch is an error lmms-eval sees, never an empty answer scored as wrong
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        lm.generate_until(_instances(4, greedy))
    lm = HarnessLMMS(checkpoint="double-model", include=DOUBLES, fail_on="describe", batch_size="4")
    lm.task_dict = {"t": {"test": [{"image": PILImage.new("RGB", (4, 4), (i, i, i))} for i in range(4)]}}
    with pytest.raises(RuntimeError, match="double model refuses"):
        lm.generate_until(_instances(4, greedy))


def _custom_task(folder: Path, n: int) -> list[str]:
    """A local lmms-eval task: JSONL rows pointing at PNGs, a task YAML and its utils.py (found by --include_path)."""
    folder.mkdir(parents=True)
    rows, answers = [], []
    for i in range(n):
        rgb = (30 * i, 255 - 20 * i, 7)
        PILImage.new("RGB", (16, 16), rgb).save(folder / f"img{i}.png")
        answer = "colour %d %d %d" % rgb if i < n - 1 else "colour 0 0 0"     # the double gets the last one wrong
        rows.append({"id": i, "image_path": str(folder / f"img{i}.png"), "answer": answer})
        answers.append(answer)
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "interop_colour.yaml").write_text(
        "task: interop_colour\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'data.jsonl'}\n"
        "test_split: test\noutput_type: generate_until\n"
        "doc_to_visual: !function utils.doc_to_visual\ndoc_to_text: !function utils.doc_to_text\n"
        "doc_to_target: answer\ngeneration_kwargs:\n  max_new_tokens: 8\n  do_sample: false\n"
        "process_results: !function utils.process_results\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n")
    (folder / "utils.py").write_text(
        "from PIL import Image\n\n"
        "def doc_to_visual(doc):\n    return [Image.open(doc['image_path']).convert('RGB')]\n\n"
        "def doc_to_text(doc, lmms_eval_specific_kwargs=None):\n    return 'What colour is the image?'\n\n"
        "def process_results(doc, results):\n"
        "    return {'exact_match': float(results[0].strip() == doc['answer'])}\n")
    return answers


def _run_lmms(tmp_path: Path, model_args: str, batch_size: int, limit: int | None = None) -> Path:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "umm_harness", "--model_args", model_args,
           "--tasks", "interop_colour", "--include_path", str(tmp_path / "task"), "--output_path",
           str(tmp_path / "lmms_out"), "--log_samples", "--batch_size", str(batch_size)]
    if limit:
        cmd += ["--limit", str(limit)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # lmms-eval logs an evaluation error and still exits 0: its log says why no results were written
    found = list((tmp_path / "lmms_out").glob("**/*_results.json"))
    assert len(found) == 1, f"lmms-eval wrote {len(found)} results files: " + r.stdout[-3000:] + r.stderr[-3000:]
    return found[0]


@needs_lmms
@pytest.mark.slow
def test_lmms_eval_runs_our_model_and_results_come_back(tmp_path):
    from doubles import read_log

    n = 7
    _custom_task(tmp_path / "task", n)
    log = tmp_path / "calls.jsonl"
    src = _run_lmms(tmp_path, f"checkpoint=double-model,include={DOUBLES},log={log}", batch_size=3)
    assert [e["n"] for e in read_log(log)] == [3, 3, 1]
    store = tmp_path / "results"
    r = run_cli("import-lmms", src, "--output", store)
    assert r.returncode == 0, r.stderr
    run_dir, manifest, res = _imported(store)
    assert run_dir.parent.name == "double-model" and manifest["model"]["name"] == "umm_harness"
    got = res["interop_colour"]
    em = got["metrics"]["exact_match"]
    assert em["value"] == pytest.approx((n - 1) / n) and em["n"] == n
    assert got["dataset"]["name"] == f"json:{tmp_path / 'task' / 'data.jsonl'}" and got["version"] == "1.0"
    assert (run_dir / "interop_colour" / "lmms_samples.jsonl").is_file()
    board = build_board(store, tmp_path, [{"task": "interop_colour", "metric": "exact_match", "label": "Colour"}])
    assert "double-model" in board and "85.71" in board


def _tiny_janus_ready() -> bool:
    from harness.models.checkpoints import TINY_DIR, missing_files

    return TINY_DIR.is_dir() and not missing_files(TINY_DIR)


@needs_lmms
@pytest.mark.slow
def test_lmms_eval_runs_bundled_tiny_janus(tmp_path):
    if not _tiny_janus_ready():
        pytest.skip("the bundled tiny-janus weights are not in harness/models/tiny_janus/")
    _custom_task(tmp_path / "task", 4)
    src = _run_lmms(tmp_path, "checkpoint=tiny-janus,device=cpu", batch_size=2)
    store = tmp_path / "results"
    assert run_cli("import-lmms", src, "--output", store).returncode == 0
    _, _, res = _imported(store)
    assert res["interop_colour"]["metrics"]["exact_match"]["n"] == 4
    assert res["interop_colour"]["model"]["spec"] == "tiny-janus"
