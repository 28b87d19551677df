"""Dataset provenance: results record the hub commit of the snapshot actually read from the local Hugging Face
cache (a fake cache laid out as `datasets` lays it out, built here; no network), default datasets are pinned where
a commit is known, and `python -m harness tasks` says where one is not."""
import pytest

from harness.data import resolve_rows
from harness.hub import dataset_commit
from tasks.wise.task import WISE

READ, PINNED = "b" * 40, "c" * 40
WISE_ROWS = [{"Prompt": f"prompt {i}", "Explanation": f"explains {i}", "Category": "Cultural knowledge",
              "Subcategory": "x", "prompt_id": i, "Hint": "h"} for i in (1, 2, 3)]


def fake_cache(root, repo: str, folder: str, rows, split: str = "test", config: str = "default"):
    """One split of `repo` cached by `datasets` under <root>/<org>___<name>/<config>/0.0.0/<folder>/ (folder = the
    commit for hub datasets): dataset_info.json and <name>-<split>.arrow, written with datasets' own writer."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    org, name = repo.split("/")
    target = root / f"{org}___{name.lower()}" / config / "0.0.0" / folder
    target.mkdir(parents=True)
    table = datasets.Dataset.from_list(rows)
    info = datasets.DatasetInfo(features=table.features, config_name=config, dataset_name=name.lower(),
                                splits=[{"name": split, "num_examples": len(rows), "dataset_name": name.lower()}])
    info.write_to_directory(str(target))
    with ArrowWriter(path=str(target / f"{name.lower()}-{split}.arrow"), features=table.features) as writer:
        for row in table:
            writer.write(row)
        writer.finalize()
    return target


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An offline process whose local Hugging Face cache is tmp_path/hf (datasets reads its constant at import)."""
    import datasets.config

    root = tmp_path / "hf" / "datasets"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(root))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root))
    return root


def test_the_commit_read_is_recorded(hf_cache):
    fake_cache(hf_cache, "org/Name", READ, [{"q": "a"}, {"q": "b"}])
    rows, info = resolve_rows(None, hub={"repo": "org/Name", "config": None, "split": "test", "revision": None},
                              world=None)
    assert [r["q"] for r in rows] == ["a", "b"]
    assert info.revision == READ and "snapshot" not in info.extra and "requested_revision" not in info.extra
    assert info.to_dict()["revision"] == READ


def test_a_pinned_commit_missing_from_the_cache_is_not_recorded_as_read(hf_cache, capsys):
    """Offline, `datasets` reads the newest cached snapshot whatever revision was asked for."""
    fake_cache(hf_cache, "org/Name", READ, [{"q": "a"}])
    _, info = resolve_rows(None, hub={"repo": "org/Name", "config": None, "split": "test", "revision": PINNED},
                           world=None)
    assert info.revision == READ and info.extra["requested_revision"] == PINNED
    assert info.extra["snapshot"] == f"read commit {READ}, not the requested {PINNED} (the one in the local cache)"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"holds commit {READ}, not the pinned {PINNED}" in err


def test_a_cache_that_names_no_commit_is_recorded_as_unresolved(hf_cache):
    fake_cache(hf_cache, "org/Name", "0123456789abcdef", [{"q": "a"}])
    _, info = resolve_rows(None, hub={"repo": "org/Name", "config": None, "split": "test", "revision": "main"},
                           world=None)
    assert info.revision is None and info.extra["requested_revision"] == "main"
    assert info.extra["snapshot"].startswith("unresolved")


def test_a_task_default_dataset_records_its_snapshot(hf_cache):
    fake_cache(hf_cache, "Yuwei-Niu/WISE", READ, WISE_ROWS)
    task = WISE(judge="world_judge")
    assert [d["prompt_id"] for d in task.docs()] == [1, 2, 3]
    recorded = task.dataset_info.to_dict()
    assert recorded["source"] == "hub" and recorded["name"] == "Yuwei-Niu/WISE" and recorded["revision"] == READ


def test_commit_from_the_download_addresses_when_the_cache_path_has_none():
    class Info:
        download_checksums = {f"hf://datasets/org/name@{READ}/data/test-00000-of-00001.parquet": {},
                              f"hf://datasets/org/name@{READ}/data/test-00001-of-00001.parquet": {}}

    class Loaded:
        cache_files = [{"filename": "/somewhere/not-a-commit/name-test.arrow"}]
        info = Info()

    assert dataset_commit(Loaded(), "org/name") == READ
    Info.download_checksums[f"hf://datasets/org/name@{PINNED}/data/x.parquet"] = {}
    assert dataset_commit(Loaded(), "org/name") is None        # two commits: nothing says which was read
    assert dataset_commit(Loaded(), "other/name") is None


def test_default_datasets_are_pinned_where_a_commit_is_known():
    from harness import registry

    pins = {}
    for name in registry.TASKS.names():
        hub = getattr(registry.TASKS.load(name), "hub", None)
        if isinstance(hub, dict):
            pins[hub["repo"]] = hub.get("revision") or hub.get("unpinned")
    assert {repo: len(pin) for repo, pin in pins.items() if pin and len(pin) == 40} == {
        "lmms-lab/VQAv2": 40, "lmms-lab/MMMU": 40, "lmms-lab/MMBench": 40, "lmms-lab/POPE": 40}
    assert set(pins) - {"lmms-lab/VQAv2", "lmms-lab/MMMU", "lmms-lab/MMBench", "lmms-lab/POPE"} == {
        "HuggingFaceM4/AdVQA", "BaiqiL/NaturalBench", "Yuwei-Niu/WISE"}
    assert all(pins.values())                      # every unpinned default says why


def test_tasks_listing_says_which_defaults_are_pinned(capsys):
    from harness.cli import main

    assert main(["tasks"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "hub@32665d3,path,shapes" in lines["vqav2_val"]
    assert "lmms-lab/VQAv2@32665d35052eb4a6d4414851c3c829a72754915a" in lines["vqav2_val"]
    assert "hub(unpinned)" in lines["wise"] and "Yuwei-Niu/WISE not pinned:" in lines["wise"]
    assert "results record the commit read" in lines["naturalbench"]
    assert "hub" not in lines["geneval"].split()[1]          # its default is GenEval's released file, sha256-pinned
