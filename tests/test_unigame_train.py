"""UniGame training on a tiny random-config Janus: gradients through the decoder, each method's step, resume,
the NaN guard, and checkpoints the harness loads (stacked ones included)."""
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from unigame.cli import build_parser, config_from_args  # noqa: E402
from unigame.run import train  # noqa: E402
from unigame.testing import tiny_clip, tiny_janus  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("unigame-models")
    return {"janus": str(tiny_janus(root / "janus")), "clip": str(tiny_clip(root / "clip"))}


def _cfg(models, out, *extra):
    argv = ["train", "--model", models["janus"], "--data", "shapes", "--shapes-scenes", "6", "--steps", "2",
            "--batch-size", "2", "--clip-weights", models["clip"], "--no-plots",
            *(["--output", str(out)] if out is not None else []), *extra]
    return config_from_args(build_parser().parse_args(argv))


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "dynamics" / "train_log.jsonl").read_text().splitlines()]


def _trainer(models, tmp_path, *extra):
    from unigame import data as data_mod
    from unigame.dist import Dist
    from unigame.modeling import load_for_training, resolve
    from unigame.trainer import Trainer

    cfg = _cfg(models, tmp_path, *extra)
    cfg.captions = "none"
    adapter, init = resolve(cfg, "cpu")
    loaded = load_for_training(cfg, adapter, init)
    return Trainer(cfg, loaded, data_mod.load("shapes", "none", 32, 4), Dist())


@pytest.mark.parametrize("interface", ["lm", "code"])
def test_gradients_reach_the_perturber_through_the_decoder(models, tmp_path, interface):
    trainer = _trainer(models, tmp_path, "--method", "unigame", "--filter", "none", "--interface", interface)
    clean = trainer.prepare(trainer.data.vqa_batch(0, 2))
    z = trainer.adversary.interface_tokens(clean)
    seen = {}
    decoder = trainer.hooks.model.model.vqmodel.decoder

    def keep_input(module, args):
        args[0].retain_grad()
        seen["input"] = args[0]
    handle = decoder.register_forward_pre_hook(keep_input)
    try:
        cands = trainer.adversary.adversarial(clean, z)
    finally:
        handle.remove()
    cands.ce.mean().backward()
    assert seen["input"].grad is not None and seen["input"].grad.abs().sum() > 0       # through the decoder
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.perturber.parameters())
    assert not any(p.requires_grad for p in decoder.parameters())                      # which stays frozen
    assert cands.kind == "pixels" and cands.pixels.shape[-1] == 32
    delta = trainer.perturber(z)
    assert delta.dtype == torch.float32
    assert float(delta.detach().norm(dim=-1).max()) <= trainer.cfg.eps_max * (1 + 1e-6)
    assert cands.delta_rel == pytest.approx(float((delta.norm(dim=-1) / z.norm(dim=-1)).mean()), rel=1e-4)


def test_with_bf16_weights_the_perturbation_reaches_the_lm_in_float32(models, tmp_path):
    """--weights-dtype bfloat16 on an understanding-path method: z + delta (float32) is the LM's input as it is; a
    cast to the bf16 embedding dtype would round a 0.02-per-token delta away."""
    trainer = _trainer(models, tmp_path, "--method", "adv_embed", "--weights-dtype", "bfloat16")
    clean = trainer.prepare(trainer.data.vqa_batch(0, 2))
    z = trainer.adversary.interface_tokens(clean)
    delta = trainer.perturber(z)
    seen = {}

    def capture(module, args, kwargs):
        seen["embeds"] = kwargs["inputs_embeds"]

    lm = trainer.hooks.model.model.language_model
    handle = lm.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        cands = trainer.adversary.run(clean, z, delta)
    finally:
        handle.remove()
    assert next(lm.parameters()).dtype == torch.bfloat16 and seen["embeds"].dtype == torch.float32
    mask = seen["embeds"].new_zeros(seen["embeds"].shape[:2], dtype=torch.bool)
    mask |= clean.batch.input_ids == trainer.hooks.model.config.image_token_id
    assert torch.equal(seen["embeds"][mask], (z + delta).reshape(-1, z.shape[-1]).detach())
    cands.ce.mean().backward()
    assert all(p.grad is not None for p in trainer.perturber.parameters())


METHODS = {
    "sft": ["--method", "sft"],
    "noise": ["--method", "noise"],
    "adv_embed": ["--method", "adv_embed", "--filter", "cosine", "--buffer", "--cos-threshold", "-1"],
    "unigame": ["--method", "unigame", "--scene-check", "off", "--clip-threshold", "0"],
    "unigame_no_decode": ["--method", "unigame", "--no-decode", "--filter", "none"],
    "unigame_code": ["--method", "unigame", "--interface", "code", "--no-buffer", "--filter", "cosine"],
    "reca": ["--method", "reca", "--reca-prompt", "What color is the circle ?"],
    "reference": ["--method", "unigame", "--reference-compat", "--candidates", "2", "--clip-weights", None],
    "ratio_1_2": ["--method", "unigame", "--filter", "none", "--ratio", "1:2", "--separate-hard-step"],
}


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_trains_and_checkpoints(models, tmp_path, name):
    extra = [models["clip"] if a is None else a for a in METHODS[name]]
    result = train(_cfg(models, tmp_path, *extra))
    log = _log(tmp_path)
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["loss_u"] is not None and r["skipped_u"] == 0 for r in log)
    meta = json.loads((result["checkpoints"][-1] / "harness.json").read_text())
    assert meta["adapter"] == "janus" and meta["base_model"] == models["janus"] and meta["step"] == 2
    if name in ("unigame", "adv_embed", "reference"):
        assert log[-1]["buffer_size"] >= 1 and "h_max" in json.dumps(log[-1]).replace("buffer_h_max", "h_max")
    if name == "reca":
        assert log[0]["loss_reca"] > 0
    if name == "noise":
        assert log[0]["eps"] == pytest.approx(0.02)
    if name == "reference":      # its OR rule rejects nothing: the record must not claim a filter did
        assert meta["semantic_filter"]["applied"] is False and meta["semantic_filter"]["rule"].startswith("or")
    if name == "unigame":
        assert "applied" not in meta["semantic_filter"] and meta["semantic_filter"]["filter"] == "clip"


def test_a_1_to_k_schedule_updates_the_adversary_on_the_steps_it_mines(models, tmp_path, monkeypatch):
    """--ratio 1:4 --mine-every 4: C updates on steps 0 and 4, whose candidates are the ones mined, so the decoder
    attack runs once per 4 steps (an update on step 3 and a separate attack to mine on step 4 would run it twice)."""
    from unigame.attack import Adversary

    calls = []
    run = Adversary.run
    monkeypatch.setattr(Adversary, "run", lambda self, *a, **k: calls.append(1) or run(self, *a, **k))
    train(_cfg(models, tmp_path, "--method", "unigame", "--steps", "8", "--filter", "none", "--scene-check", "off",
               "--ratio", "1:4", "--mine-every", "4"))
    log = _log(tmp_path)
    updated = [r["step"] for r in log if r.get("loss_c") is not None]
    mined = [r["step"] for r in log if r.get("candidates")]
    assert updated == mined == [1, 5] and len(calls) == 2       # logged steps count from 1
    assert all(r.get("loss_hard") is not None for r in log)     # every U step still draws from the buffer


def test_the_reference_defect_switches_reach_its_generation_side_mining(models, tmp_path):
    """--ce-reduction batch and --delta-dtype bfloat16 change the reference profile's mining (its hardness comes
    from sampled images, not from the perturber step), as the reference code's defects do."""
    from unigame.refcompat import bf16_add

    flags = [models["clip"] if a is None else a for a in METHODS["reference"]]
    runs = {}
    for name, extra in (("plain", []), ("batch_ce", ["--ce-reduction", "batch"])):
        train(_cfg(models, tmp_path / name, *flags, *extra))
        runs[name] = [(r["tau"], r["hard_h_mean"]) for r in _log(tmp_path / name)]
    assert runs["plain"] != runs["batch_ce"]
    e = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)) * 7
    delta = torch.full_like(e, 0.01)
    rounded = e + bf16_add(lambda x: delta)(e)          # what the sampler feeds the LM
    torch.testing.assert_close(rounded, (e.bfloat16() + delta.bfloat16()).float(), rtol=2 ** -22, atol=0)
    assert not torch.equal(rounded, e + delta)


def test_stop_and_resume_repeats_the_same_losses(models, tmp_path):
    flags = ["--method", "unigame", "--steps", "4", "--filter", "none", "--scene-check", "off", "--capacity", "2",
             "--warmup", "1"]
    train(_cfg(models, tmp_path / "straight", *flags))
    # --resume from the first run on, as a requeued batch script passes it: with no checkpoint yet it starts at 0
    train(_cfg(models, tmp_path / "resumed", *flags, "--stop-at", "2", "--resume"))
    assert [r["step"] for r in _log(tmp_path / "resumed")] == [1, 2]
    train(_cfg(models, tmp_path / "resumed", *flags, "--resume"))
    straight, resumed = _log(tmp_path / "straight"), _log(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(straight, resumed):
        for key in ("loss_u", "loss_clean", "loss_hard", "loss_c", "eps", "buffer_size", "tau"):
            assert a.get(key) == b.get(key), (a["step"], key)
    assert resumed[2]["buffer_size"] >= 1


def test_an_output_folder_of_another_base_model_is_refused_before_loading(models, tmp_path):
    """An --output shared by two models' runs (runs are named by method and seed) meets the first model's
    checkpoints; one of the same architecture would take that run's LoRA without complaint."""
    from harness.errors import HarnessError

    flags = ["--method", "sft", "--steps", "2"]
    train(_cfg(models, tmp_path / "run", *flags, "--stop-at", "1"))
    other = str(tiny_janus(tmp_path / "other-janus"))           # same shapes, other weights
    with pytest.raises(HarnessError, match=f"holds checkpoints of a run from {models['janus']}, not {other}; "
                                           "pass --model .* to continue that run, or choose another --output"):
        train(_cfg(models, tmp_path / "run", *flags, "--model", other, "--resume"))
    with pytest.raises(HarnessError, match=f"from {models['janus']}, not {other}; choose another --output"):
        train(_cfg(models, tmp_path / "run", *flags, "--model", other))
    # the same model, spelled through another path to the same folder, still resumes
    alias = tmp_path / "alias"
    alias.symlink_to(models["janus"])
    done = train(_cfg(models, tmp_path / "run", *flags, "--model", str(alias), "--resume"))
    assert [r["step"] for r in _log(tmp_path / "run")] == [1, 2] and done["checkpoints"]


def test_the_default_output_is_per_base_model_and_resumes_a_run_in_the_earlier_default(models, tmp_path,
                                                                                       monkeypatch):
    """runs/<model>/<method>-s<seed>: a second model trains with no --output. A --resume finds a run of the same
    model in the default of earlier versions (runs/<method>-s<seed>) and continues it there."""
    monkeypatch.chdir(tmp_path)
    flags = ["--method", "sft", "--steps", "2"]
    train(_cfg(models, "runs/sft-s0", *flags, "--stop-at", "1"))            # where earlier versions put it
    resumed = train(_cfg(models, None, *flags, "--resume"))
    assert Path(resumed["output"]) == Path("runs/sft-s0") and [r["step"] for r in _log("runs/sft-s0")] == [1, 2]
    other = str(tiny_janus(tmp_path / "other-janus"))                     # same shapes, other weights
    second = train(_cfg(models, None, *flags, "--model", other, "--resume"))
    assert Path(second["output"]) == Path("runs/other-janus/sft-s0") and second["checkpoints"]
    fresh = train(_cfg(models, None, *flags))           # without --resume the earlier default is not looked at
    assert Path(fresh["output"]) == Path("runs") / Path(models["janus"]).name / "sft-s0"


def test_non_finite_losses_skip_the_step(models, tmp_path, monkeypatch):
    trainer = _trainer(models, tmp_path, "--method", "sft")
    before = [p.detach().clone() for p in trainer.lora]
    real = trainer.hooks.answer_loss
    monkeypatch.setattr(trainer.hooks, "answer_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    m = trainer.train_step(0)
    assert m["skipped_u"] == 1 and trainer.u.skipped == 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.lora))
    monkeypatch.setattr(trainer.hooks, "answer_loss", real)
    assert trainer.train_step(1)["skipped_u"] == 0


def _answer_logits(model_hooks, batch):
    model_hooks.model.eval()
    with torch.no_grad():
        return model_hooks.answer_logits(batch)


def test_checkpoints_load_in_the_harness_stacked_ones_included(models, tmp_path):
    from harness.models import resolve_model
    from harness.models.janus_hooks import JanusHooks

    first = train(_cfg(models, tmp_path / "reca", "--method", "reca", "--und-lr", "0.05", "--warmup", "0"))
    stacked = train(_cfg(models, tmp_path / "stack", "--method", "unigame", "--filter", "none", "--und-lr", "0.05",
                         "--warmup", "0", "--init-from", str(first["checkpoints"][-1])))
    ckpt = stacked["checkpoints"][-1]
    meta = json.loads((ckpt / "harness.json").read_text())
    assert meta["base_model"] == models["janus"]
    assert meta["method"] == "reca(und_lr=0.05)+unigame(filter=none,und_lr=0.05)"
    assert meta["init_from"]["method"] == "reca(und_lr=0.05)"
    trainer = stacked["trainer"]
    rows = trainer.data.vqa_batch(0, 2)
    from unigame.data import pil

    batch = trainer.hooks.understanding_batch([pil(r["image"]) for r in rows], [r["question"] for r in rows],
                                              [r["answer"] for r in rows])
    trained = _answer_logits(trainer.hooks, batch)
    model, processor = resolve_model(str(ckpt), {"device": "cpu"}).load()
    loaded = _answer_logits(JanusHooks(model, processor), batch)
    base_model, base_processor = resolve_model(models["janus"], {"device": "cpu"}).load()
    base = _answer_logits(JanusHooks(base_model, base_processor), batch)
    assert (trained - base).abs().max() > 1e-3                    # training moved the model...
    assert torch.allclose(loaded, trained, atol=1e-4)             # ...and the checkpoint is exactly that model


class _Payload:
    """A pickle that runs code when unpickled (what a crafted checkpoint folder would hold)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["state.safetensors", "state.pt"])
def test_a_pickle_payload_in_a_checkpoint_is_refused_without_running(models, tmp_path, where):
    import pickle

    from harness.errors import HarnessError

    flags = ["--method", "sft", "--steps", "2"]
    first = train(_cfg(models, tmp_path / "run", *flags, "--stop-at", "1"))
    training = first["checkpoints"][-1] / "training"
    assert (training / "state.safetensors").is_file() and not (training / "state.pt").exists()   # no pickle
    marker = tmp_path / "payload-ran"
    if where == "state.pt":                       # a folder laid out as earlier versions wrote it
        (training / "state.safetensors").unlink()
    (training / where).write_bytes(pickle.dumps({"trainer": _Payload(marker)}))
    with pytest.raises(HarnessError, match="training state") as err:
        train(_cfg(models, tmp_path / "run", *flags, "--resume"))
    assert str(training / where) in str(err.value)
    assert not marker.exists()                    # refused before anything in it ran


def test_without_clip_weights_the_world_run_falls_back_to_no_filter_and_says_so(models, tmp_path, monkeypatch,
                                                                                capsys):
    """The README's training command on a machine without downloads: the default CLIP filter cannot load, so the
    run trains with --filter none (the world's exact scene check still guards the labels), says so first, and its
    label, folder and checkpoint names say filter=none, so it is never taken for a CLIP-filtered run."""
    from harness.errors import WeightsError

    monkeypatch.chdir(tmp_path)
    flags = ["--method", "unigame", "--steps", "1", "--clip-weights", "nobody/no-such-clip"]
    result = train(_cfg(models, None, *flags))
    said = capsys.readouterr()
    assert "training with --filter none, the world's exact scene check guarding the labels" in said.out + said.err
    run = Path("runs") / Path(models["janus"]).name / "unigame_filter-none-s0"
    assert Path(result["output"]) == run
    assert result["checkpoints"][-1].resolve() == (run / "checkpoints" / "unigame_filter-none-s0-step000001").resolve()
    assert json.loads((result["checkpoints"][-1] / "harness.json").read_text())["method"] == "unigame(filter=none)"
    # a filter asked for by name is never swapped for another
    with pytest.raises(WeightsError, match="nobody/no-such-clip.*pass --clip-weights PATH"):
        train(_cfg(models, tmp_path / "explicit", *flags, "--filter", "clip"))


def test_sigterm_ends_the_step_under_way_saves_it_and_resume_repeats_the_same_losses(models, tmp_path, monkeypatch,
                                                                                      capsys):
    """A scheduler's SIGTERM (time limit, preemption) costs no finished step: the step under way completes, is
    saved, and the command exits 143; --resume then continues as if nothing had happened."""
    import os
    import signal

    from unigame.cli import main
    from unigame.trainer import Trainer

    flags = ["--method", "unigame", "--steps", "4", "--filter", "none", "--scene-check", "off", "--capacity", "2",
             "--warmup", "1"]
    train(_cfg(models, tmp_path / "straight", *flags))
    argv = ["train", "--model", models["janus"], "--data", "shapes", "--shapes-scenes", "6", "--batch-size", "2",
            "--clip-weights", models["clip"], "--no-plots", "--output", str(tmp_path / "stopped"), *flags]
    step = Trainer.train_step

    def signalled_during_the_second_step(self, n):
        if n == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, n)

    monkeypatch.setattr(Trainer, "train_step", signalled_during_the_second_step)
    assert main(argv) == 143
    assert [r["step"] for r in _log(tmp_path / "stopped")] == [1, 2]
    said = capsys.readouterr()
    assert "SIGTERM: stopped after step 2, saved as" in said.out and "Traceback" not in said.err
    assert said.err.strip().endswith("rerun the same command with --resume to continue from the last checkpoint")
    monkeypatch.setattr(Trainer, "train_step", step)
    assert main([*argv, "--resume"]) == 0
    straight, resumed = _log(tmp_path / "straight"), _log(tmp_path / "stopped")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(straight, resumed):
        for key in ("loss_u", "loss_clean", "loss_hard", "loss_c", "eps", "buffer_size", "tau"):
            assert a.get(key) == b.get(key), (a["step"], key)


def test_sigterm_during_a_checkpoints_evaluation_stops_it_and_resume_finishes_it(models, tmp_path, monkeypatch,
                                                                                 capsys):
    """Evaluations run for minutes to hours: a SIGTERM stops one at once (its finished answers are stored) rather
    than after it, and --resume evaluates that checkpoint before training on."""
    import os
    import signal

    import unigame.run
    from unigame.cli import main

    results = tmp_path / "results"
    argv = ["train", "--model", models["janus"], "--data", "shapes", "--shapes-scenes", "6", "--batch-size", "2",
            "--clip-weights", models["clip"], "--no-plots", "--output", str(tmp_path / "run"), "--method", "sft",
            "--steps", "4", "--eval", "vqav2_val", "--eval-data", "shapes", "--eval-limit", "3", "--eval-every", "2",
            "--no-eval-base", "--results", str(results)]
    evaluate = unigame.run.evaluate_model
    asked = []

    def signalled_as_the_evaluation_begins(spec, *args, **kwargs):
        asked.append(spec)
        os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(spec, *args, **kwargs)

    monkeypatch.setattr(unigame.run, "evaluate_model", signalled_as_the_evaluation_begins)
    assert main(argv) == 143
    assert [r["step"] for r in _log(tmp_path / "run")] == [1, 2] and len(asked) == 1
    assert not list(results.glob("*/*/vqav2_val/results.json"))          # stopped before it finished
    monkeypatch.setattr(unigame.run, "evaluate_model", evaluate)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "evaluating step 2 on vqav2_val" in capsys.readouterr().out
    steps = sorted(json.loads(m.read_text())["tags"]["step"] for m in results.glob("*/*/manifest.json")
                   if json.loads(m.read_text())["status"] == "complete")
    assert steps == [2, 4]
    # a finished run resumed evaluates its last checkpoint again, every answer from the cache
    assert main([*argv, "--resume"]) == 0
    said = capsys.readouterr().out
    assert "evaluating step 4 on vqav2_val" in said and "step 4: vqav2_val" in said and "(0 requests computed" in said
