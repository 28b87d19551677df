"""UniGame and every comparison method on a tiny random-config Emu3, through the same trainer and command line as
Janus: the perturber's gradient reaches it through Emu3's VQ decoder and the straight-through re-encoding, every
method trains two steps, a killed run resumes to the same parameters, checkpoints load in the harness, and the
reference-code profile is refused with one line."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from unigame.cli import build_parser, config_from_args, main  # noqa: E402
from unigame.run import train  # noqa: E402
from unigame.testing import tiny_clip, tiny_emu3  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("unigame-emu3")
    return {"emu3": str(tiny_emu3(root / "emu3")), "clip": str(tiny_clip(root / "clip"))}


def _argv(models, out, *extra):
    return ["train", "--model", models["emu3"], "--data", "shapes", "--shapes-scenes", "6", "--steps", "2",
            "--batch-size", "2", "--clip-weights", models["clip"], "--no-plots", "--output", str(out), *extra]


def _cfg(models, out, *extra):
    return config_from_args(build_parser().parse_args(_argv(models, out, *extra)))


def _unigame(*argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "unigame", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=900)


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "dynamics" / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("interface", ["code", "lm"])
def test_the_perturbers_gradient_goes_through_emu3s_decoder_and_vq_encoder(models, tmp_path, interface):
    from unigame import data as data_mod
    from unigame.dist import Dist
    from unigame.modeling import load_for_training, resolve
    from unigame.trainer import Trainer

    flags = ["--method", "unigame", "--filter", "none"] + (["--interface", interface] if interface == "lm" else [])
    cfg = _cfg(models, tmp_path, *flags)
    adapter, init = resolve(cfg, "cpu")
    assert cfg.interface == interface                    # code: Emu3's own default, not named in the label
    assert cfg.label() == ("unigame(filter=none,interface=lm)" if interface == "lm" else "unigame(filter=none)")
    trainer = Trainer(cfg, load_for_training(cfg, adapter, init), data_mod.load("shapes", "none", 32, 4), Dist())
    assert trainer.perturber.dim == (4 if interface == "code" else 64)      # codebook entries / LM embeddings
    clean = trainer.prepare(trainer.data.vqa_batch(0, 2))
    z = trainer.adversary.interface_tokens(clean)
    vq = trainer.hooks.model.model.vqmodel
    seen = {}

    def keep(name):
        def hook(module, args):
            args[0].retain_grad()
            seen[name] = args[0]
        return hook
    handles = [vq.decoder.register_forward_pre_hook(keep("decoder")),
               vq.encoder.register_forward_pre_hook(keep("encoder"))]
    try:
        cands = trainer.adversary.adversarial(clean, z)
    finally:
        for h in handles:
            h.remove()
    cands.ce.mean().backward()
    for where in ("decoder", "encoder"):                # decoded, then re-encoded through the quantiser
        assert seen[where].grad is not None and seen[where].grad.abs().sum() > 0, where
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.perturber.parameters())
    assert not any(p.requires_grad for p in vq.parameters())                 # Emu3's VQ model stays frozen
    assert cands.kind == "pixels" and cands.pixels.shape[-1] == 32
    assert float(trainer.perturber(z).detach().norm(dim=-1).max()) <= cfg.eps_max * (1 + 1e-6)


METHODS = {
    "sft": ["--method", "sft"],
    "noise": ["--method", "noise"],
    "adv_embed": ["--method", "adv_embed", "--filter", "cosine", "--buffer", "--cos-threshold", "-1"],
    "unigame": ["--method", "unigame", "--scene-check", "off", "--clip-threshold", "0",
                "--eval", "vqav2_val", "--eval-data", "shapes", "--eval-limit", "2", "--eval-batch-size", "2"],
    "reca": ["--method", "reca", "--reca-prompt", "What color is the circle ?"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_two_steps_on_emu3_from_the_command_line(models, tmp_path, name):
    proc = _unigame(*_argv(models, tmp_path / "run", *METHODS[name]), "--results", tmp_path / "results")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["loss_u"] is not None and r["skipped_u"] == 0 for r in log)
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("*-step000002")
    meta = json.loads((ckpt / "harness.json").read_text())
    assert meta["adapter"] == "emu3" and meta["base_model"] == models["emu3"] and meta["step"] == 2
    assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "COMPLETE").is_file()
    if name in ("noise", "adv_embed", "unigame"):
        assert meta["hyper_parameters"]["interface"] == "code"
    if name in ("adv_embed", "unigame"):
        assert log[-1]["buffer_size"] >= 1 and log[0]["loss_c"] > 0 and log[0]["grad_norm_c"] > 0
    if name == "unigame":
        assert meta["perturber"]["dim"] == 4 and log[0]["passed"] == 2         # decoded candidates, CLIP-filtered
        runs = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/*/manifest.json")]
        assert {r["tags"]["method"] for r in runs} == {"base", "unigame"}
        assert all(r["status"] == "complete" and r["model"]["name"] == "emu3" for r in runs)
    if name == "reca":
        assert log[0]["loss_reca"] > 0
    if name == "noise":
        assert log[0]["eps"] == pytest.approx(0.02)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_parameters_of_an_uninterrupted_one(models, tmp_path):
    from safetensors.torch import load_file

    flags = ["--method", "unigame", "--steps", "6", "--save-every", "2", "--filter", "none", "--scene-check", "off",
             "--capacity", "2", "--warmup", "1"]
    straight = _unigame(*_argv(models, tmp_path / "straight", *flags))
    assert straight.returncode == 0, straight.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "unigame", *_argv(models, killed, *flags)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list((killed / "checkpoints").glob("*-step000002/COMPLETE")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL                  # killed mid-run, not finished
    assert not list((killed / "checkpoints").glob("*-step000006"))
    resumed = _unigame(*_argv(models, killed, *flags), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    for name in ("lora", "perturber"):
        (a,), (b,) = ((p / "checkpoints").glob("*-step000006") for p in (tmp_path / "straight", killed))
        one, two = (load_file(str(c / "training" / f"{name}.safetensors")) for c in (a, b))
        assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one), name
    assert [r["step"] for r in _log(killed)] == [1, 2, 3, 4, 5, 6]


def test_checkpoints_load_in_the_harness_as_the_trained_model(models, tmp_path):
    from harness.models import resolve_model
    from unigame.data import pil

    result = train(_cfg(models, tmp_path, "--method", "unigame", "--filter", "none", "--und-lr", "0.05",
                        "--warmup", "0"))
    trainer, ckpt = result["trainer"], result["checkpoints"][-1]
    rows = trainer.data.vqa_batch(0, 2)
    batch = trainer.hooks.understanding_batch([pil(r["image"]) for r in rows], [r["question"] for r in rows],
                                              [r["answer"] for r in rows])

    def logits(hooks):
        hooks.model.eval()
        with torch.no_grad():
            return hooks.answer_logits(batch)
    trained = logits(trainer.hooks)
    loaded = logits(resolve_model(str(ckpt), {"device": "cpu"}).training_hooks())
    base = logits(resolve_model(models["emu3"], {"device": "cpu"}).training_hooks())
    assert (trained - base).abs().max() > 1e-3                    # training moved the model...
    assert torch.allclose(loaded, trained, atol=1e-4)             # ...and the checkpoint is exactly that model


def test_the_reference_code_profile_is_refused_on_emu3_in_one_line(models, tmp_path, capsys):
    code = main(_argv(models, tmp_path / "ref", "--method", "unigame", "--reference-compat"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--reference-compat does not apply" in err and "Emu3-Chat-hf" in err and "--no-decode" in err
    assert not (tmp_path / "ref").exists()                        # refused before anything was written
