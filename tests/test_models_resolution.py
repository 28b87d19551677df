"""`--model` resolution: every accepted form, and one clear line for every failure."""
import json
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from harness.errors import HarnessError, WeightsError  # noqa: E402
from harness.models import resolve_model  # noqa: E402
from harness.models.checkpoints import TINY_DIR, file_hash  # noqa: E402
from harness.models.janus import JanusAdapter  # noqa: E402
from tinyfactory.build import save_random_model  # noqa: E402
from conftest import ROOT  # noqa: E402

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("models") / "base"
    save_random_model(path, seed=2)
    return path


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "harness-cache"))


def _hub(tmp_path, base, repo="acme/janus-mini", commit=COMMIT_A, drop=()):
    root = tmp_path / "hf" / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    shutil.copytree(base, snap, dirs_exist_ok=True)
    for name in drop:
        (snap / name).unlink()
    return snap


def _checkpoint(tmp_path, base, scale=0.5, base_model=None, **meta):
    """A trainer-style checkpoint: harness.json + PEFT LoRA files with non-zero weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import JanusForConditionalGeneration

    model = JanusForConditionalGeneration.from_pretrained(base, use_safetensors=True)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=r"model\.language_model\.layers\.\d+\.self_attn\.(q|v)_proj")
    peft_model = get_peft_model(model, cfg)
    torch.manual_seed(0)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, scale)
    ckpt = tmp_path / "ckpt"
    peft_model.save_pretrained(ckpt)
    info = {"adapter": "janus", "base_model": str(base_model or base), "method": "unigame",
            "hyper_parameters": {"eps_max": 0.02}, **meta}
    (ckpt / "harness.json").write_text(json.dumps(info))
    return ckpt


def _loss(model):
    from PIL import Image

    hooks = model.training_hooks()
    b = hooks.understanding_batch([Image.new("RGB", (32, 32), (220, 40, 40))], ["What color is the circle?"],
                                  ["red"])
    with torch.no_grad():
        return float(hooks.answer_loss(b)[0])


def test_registered_names_point_at_the_hub_and_say_how_to_fetch(tmp_path):
    for name, hub in (("janus-pro-1b", "deepseek-community/Janus-Pro-1B"),
                      ("janus-pro-7b", "deepseek-community/Janus-Pro-7B")):
        with pytest.raises(WeightsError) as e:
            resolve_model(name)
        msg = str(e.value)
        assert f"hf download {hub}" in msg and "--model" in msg and "model.safetensors" in msg
        assert "\n" not in msg


def test_generic_janus_entry_needs_a_target(base):
    with pytest.raises(HarnessError, match="needs the checkpoint"):
        resolve_model("janus")
    assert isinstance(resolve_model("janus", {"model": str(base)}), JanusAdapter)


def test_hub_id_from_the_local_cache_and_its_commit_in_the_fingerprint(tmp_path, base):
    _hub(tmp_path, base)
    m = resolve_model("acme/janus-mini")
    assert m.source.kind == "hub" and m.source.commit == COMMIT_A
    fp = m.fingerprint()
    _hub(tmp_path, base, commit=COMMIT_B)
    assert resolve_model("acme/janus-mini").fingerprint() != fp
    assert resolve_model("acme/janus-mini", {"revision": COMMIT_A}).fingerprint() == fp
    assert m.understand([])== [] and m.generate([]) == []


def test_incomplete_hub_snapshot_names_the_missing_file(tmp_path, base):
    _hub(tmp_path, base, repo="acme/partial", drop=("model.safetensors",))
    with pytest.raises(WeightsError, match=r"lacks model\.safetensors.*hf download acme/partial"):
        resolve_model("acme/partial")


def test_unknown_hub_id_offline(tmp_path):
    with pytest.raises(WeightsError, match="not in the local Hugging Face cache"):
        resolve_model("acme/never-downloaded")


def test_local_folder_errors_name_the_expected_files(tmp_path, base):
    broken = tmp_path / "broken"
    shutil.copytree(base, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"missing model\.safetensors"):
        resolve_model(str(broken))
    (broken / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match="safetensors only"):
        resolve_model(str(broken))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match="no loadable weights"):
        resolve_model(str(empty))
    f = tmp_path / "file.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(HarnessError, match="a file, not a model folder"):
        resolve_model(str(f))
    bad_config = tmp_path / "bad-config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    with pytest.raises(HarnessError, match=r"bad-config/config\.json: not a JSON object"):
        resolve_model(str(bad_config))
    # a path that is not there is named as a missing folder, not as an unknown registered model
    for missing in (str(tmp_path / "nowhere"), "./nowhere", "runs/sft/checkpoints/step-3", "~/nowhere"):
        with pytest.raises(HarnessError, match=f"--model {missing}: no such folder"):
            resolve_model(missing)
    with pytest.raises(HarnessError, match="unknown model 'tiny-jans'; did you mean 'tiny-janus'"):
        resolve_model("tiny-jans")


def test_bad_model_args_are_one_line_errors(base):
    with pytest.raises(HarnessError, match="dtype"):
        resolve_model(str(base), {"dtype": "int3"})
    with pytest.raises(HarnessError, match="--model-args"):
        resolve_model(str(base), {"no_such_arg": 1})


def test_fingerprint_follows_weight_content_and_caches_hashes(tmp_path, base):
    local = tmp_path / "local"
    shutil.copytree(base, local)
    fp = resolve_model(str(local)).fingerprint()
    assert (tmp_path / "harness-cache" / "file-hashes.json").exists()
    weights = local / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert resolve_model(str(local)).fingerprint() != fp
    assert file_hash(weights) == file_hash(weights)


def test_checkpoint_with_lora_applies_the_adapter_merged_or_not(tmp_path, base):
    ckpt = _checkpoint(tmp_path, base)
    merged = resolve_model(str(ckpt))
    unmerged = resolve_model(str(ckpt), {"merge_lora": False})
    plain = resolve_model(str(base))
    assert merged.source.kind == "checkpoint" and merged.source.base.kind == "local"
    assert len({merged.fingerprint(), unmerged.fingerprint(), plain.fingerprint()}) == 3
    info = merged.describe()
    assert info["source"]["method"] == "unigame" and info["merge_lora"] is True
    a, b, c = _loss(merged), _loss(unmerged), _loss(plain)
    assert abs(a - b) < 1e-3 and abs(a - c) > 1e-3
    ckpt2 = _checkpoint(tmp_path / "other", base, scale=0.7)
    assert resolve_model(str(ckpt2)).fingerprint() != merged.fingerprint()


@pytest.mark.parametrize("name", ["janus-pro-7b", "tiny-janus", "janus"])
def test_a_local_folder_named_like_a_registered_model_is_that_folder(tmp_path, base, monkeypatch, name):
    """`hf download deepseek-community/Janus-Pro-7B --local-dir janus-pro-7b`, then `--model ./janus-pro-7b`:
    the folder, not the registered model of that name (the hub's, or the bundled one)."""
    shutil.copytree(base, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for spelling in (f"./{name}", str(tmp_path / name)):
        m = resolve_model(spelling)
        assert m.source.kind == "local" and m.source.path.absolute() == tmp_path / name, spelling
        assert m.fingerprint() == resolve_model(str(base)).fingerprint()
    try:                                        # the bare name stays the registered model (or its error)
        bare = resolve_model(name).source.path.absolute()
    except HarnessError:
        bare = None
    assert bare != tmp_path / name


def test_checkpoint_on_a_hub_base_and_relative_paths(tmp_path, base):
    _hub(tmp_path, base)
    ckpt = _checkpoint(tmp_path, base, base_model="acme/janus-mini")
    m = resolve_model(str(ckpt))
    assert m.source.base.kind == "hub" and m.source.commit == COMMIT_A
    rel = _checkpoint(tmp_path / "r", base, base_model="../../base")
    shutil.copytree(base, tmp_path / "base")
    assert resolve_model(str(rel)).source.base.path.resolve() == (tmp_path / "base").resolve()


def test_checkpoint_failures(tmp_path, base):
    ckpt = _checkpoint(tmp_path, base)
    (ckpt / "adapter_model.safetensors").unlink()
    with pytest.raises(WeightsError, match="adapter_model.safetensors"):
        resolve_model(str(ckpt))
    ckpt = _checkpoint(tmp_path / "b", base, base_model="acme/not-cached")
    with pytest.raises(WeightsError, match="base model of checkpoint.*hf download acme/not-cached"):
        resolve_model(str(ckpt))
    ckpt = _checkpoint(tmp_path / "c", base)
    meta = json.loads((ckpt / "harness.json").read_text())
    del meta["base_model"]
    (ckpt / "harness.json").write_text(json.dumps(meta))
    with pytest.raises(HarnessError, match="missing 'base_model'"):
        resolve_model(str(ckpt))
    (ckpt / "harness.json").write_text("{not json")
    with pytest.raises(HarnessError, match="harness.json"):
        resolve_model(str(ckpt))
    nested = _checkpoint(tmp_path / "d", base, base_model=str(tmp_path / "b" / "ckpt"))
    with pytest.raises(HarnessError, match="cannot be the base model"):
        resolve_model(str(nested))


def test_missing_weights_is_one_line_on_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "run", "--model", "janus-pro-7b", "--tasks", "x",
                          "--output", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ})
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and "hf download deepseek-community/Janus-Pro-7B" in err


def test_the_bundled_default_resolves_with_its_default_data():
    if not (TINY_DIR / "model.safetensors").exists():
        pytest.skip("the bundled tiny model has not been trained in this checkout")
    m = resolve_model(None)
    assert m.spec == "tiny-janus" and m.default_data == "shapes" and m._model is None


@pytest.mark.parametrize("name, names_owner, command", [
    ("tiny-janus", "harness.models.checkpoints:NAMED", "`python -m tinyfactory.pretrain`"),
    ("tiny-emu3", "harness.models.emu3:NAMES", "`python -m tinyfactory.pretrain --arch emu3`")])
def test_a_missing_bundled_model_says_how_to_rebuild_it(name, names_owner, command, tmp_path, monkeypatch):
    import importlib

    from harness.models import checkpoints

    module, attr = names_owner.split(":")
    gone = tmp_path / name.replace("-", "_")
    monkeypatch.setitem(checkpoints.BUNDLED, gone, (name, command.strip("`")))
    monkeypatch.setitem(getattr(importlib.import_module(module), attr), name, str(gone))
    with pytest.raises(WeightsError, match=f"the bundled tiny model is missing .*run {command}$"):
        resolve_model(name)
    gone.mkdir()
    (gone / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match=rf"bundled tiny model \({name}\) is missing model\.safetensors"):
        resolve_model(name)
