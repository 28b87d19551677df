"""UniGame trainer parts that need no model: perturber budget, buffer, adapter stacking, batching, config, CLI."""
import json

import pytest

torch = pytest.importorskip("torch")

from unigame.buffer import HardBuffer, HardSample, select, threshold  # noqa: E402
from unigame.cli import main  # noqa: E402
from unigame.config import TrainConfig  # noqa: E402
from unigame.data import TrainData, training_answer  # noqa: E402
from unigame.perturber import Perturber, fit_hidden, mlp_parameters  # noqa: E402
from unigame.stacking import combine  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ perturber

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_perturbation_has_the_gated_norm_in_float32(dtype):
    torch.manual_seed(0)
    c = Perturber(64, hidden=32, depth=3, eps_max=0.02)
    z = (torch.randn(3, 16, 64) * 5).to(dtype)
    delta = c(z)
    assert delta.dtype == torch.float32 and delta.shape == z.shape
    norms = delta.norm(dim=-1)
    eps = float(c.eps.detach())
    assert torch.allclose(norms, torch.full_like(norms, eps), rtol=1e-5)
    assert 0 < eps < 0.02
    with torch.no_grad():
        c.gate.fill_(50.0)               # a saturated gate still never exceeds the budget
    assert float(c(z).norm(dim=-1).max()) <= 0.02 * (1 + 1e-6)


def test_perturber_gradients_reach_every_parameter_and_the_last_layer_starts_orthogonal():
    torch.manual_seed(0)
    c = Perturber(16, hidden=16, depth=3, eps_max=0.02)
    w = c.mlp[-1].weight
    assert torch.allclose(w @ w.t(), torch.eye(16), atol=1e-5)
    (c(torch.randn(2, 4, 16)) * torch.randn(2, 4, 16)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in c.parameters())


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_parameter_count_formula(depth):
    c = Perturber(40, hidden=24, depth=depth)
    assert c.parameter_count() == mlp_parameters(40, 24, depth)


def test_hidden_width_fits_the_one_percent_budget():
    # Janus-Pro-7B's LM width: the paper's 256 gives ~2.1M parameters, far under 1% of 7B
    hidden, note = fit_hidden(4096, 3, 7_000_000_000, None)
    assert hidden == 256 and note == "" and 2.0e6 < mlp_parameters(4096, 256, 3) < 2.3e6
    hidden, note = fit_hidden(128, 3, 2_000_000, None)           # a tiny model: shrink and say so
    assert hidden < 256 and mlp_parameters(128, hidden, 3) < 20_000 and "reduced" in note
    hidden, note = fit_hidden(128, 3, 2_000_000, 512)            # explicit width: kept, with a warning
    assert hidden == 512 and "kept as requested" in note


# ------------------------------------------------------------------------------------------------ buffer

def _sample(h, row=0):
    return HardSample(h, step=0, row=row, kind="visual", tensor=torch.zeros(2))


def test_buffer_keeps_the_hardest_up_to_capacity_in_rank_order():
    buf = HardBuffer(capacity=3)
    assert buf.push([_sample(1.0, 1), _sample(5.0, 2)]) == 2
    assert buf.push([_sample(3.0, 3), _sample(0.5, 4), _sample(4.0, 5)]) == 2
    assert [s.hardness for s in buf.items] == [5.0, 4.0, 3.0]
    assert buf.evicted == 1 and buf.rejected == 1 and len(buf) == 3
    buf.push([_sample(4.0, 6)])                       # a tie keeps the older sample first
    assert [s.row for s in buf.items] == [2, 5, 6]
    stats = buf.stats()
    assert stats["size"] == 3 and stats["h_max"] == 5.0 and stats["h_min"] == 4.0


def test_buffer_sampling_state_and_pop():
    buf = HardBuffer(capacity=10, pop=True)
    buf.push([_sample(float(i), i) for i in range(6)])
    g = torch.Generator().manual_seed(0)
    drawn = buf.sample(4, g)
    assert len(drawn) == 4 and len(buf) == 2 and len({s.row for s in drawn}) == 4
    copy = HardBuffer(capacity=10)
    copy.load_state_dict(buf.state_dict())
    assert [s.row for s in copy.items] == [s.row for s in buf.items] and copy.pop and copy.capacity == 10
    # resumed on more processes, a rank's buffer keeps its own share of the capacity: the hardest items
    smaller = HardBuffer(capacity=1)
    smaller.load_state_dict(buf.state_dict())
    assert smaller.capacity == 1 and [s.row for s in smaller.items] == [buf.items[0].row]
    assert smaller.evicted == buf.evicted + 1


def test_the_ranks_shares_of_the_buffer_sum_to_its_capacity():
    from unigame.buffer import rank_share

    for world in (1, 2, 3, 8, 64):
        shares = [rank_share(50, rank, world) for rank in range(world)]
        assert sum(shares) == max(50, world) and max(shares) - min(shares) <= 1
    assert [rank_share(50, r, 8) for r in range(8)] == [7, 7, 6, 6, 6, 6, 6, 6]


def test_selection_rules():
    h = torch.tensor([0.1, 0.5, 0.9, 1.3, 2.0])
    tau = threshold(h, 0.6)
    assert tau == pytest.approx(float(torch.quantile(h, 0.6)))
    passed = torch.tensor([True, True, True, False, True])
    assert select(h, passed, tau, "and").tolist() == [False, False, False, False, True]
    low = torch.tensor([True, False, False, False, False])
    assert select(h, passed, tau, "or", low).tolist() == [True, False, False, True, True]


# ------------------------------------------------------------------------------------------------ stacking

def test_two_loras_combine_into_one_exact_adapter():
    torch.manual_seed(0)
    mods = ["m.layers.0.q_proj", "m.layers.0.v_proj"]
    s1 = {f"{m}.lora_A.weight": torch.randn(4, 6) for m in mods} | {f"{m}.lora_B.weight": torch.randn(5, 4)
                                                                    for m in mods}
    s2 = {f"{mods[0]}.lora_A.weight": torch.randn(2, 6), f"{mods[0]}.lora_B.weight": torch.randn(5, 2)}
    c1, c2 = {"r": 4, "lora_alpha": 8, "target_modules": mods}, {"r": 2, "lora_alpha": 16, "target_modules": mods[:1]}
    state, config = combine((s1, c1), (s2, c2))
    assert config["r"] == config["lora_alpha"] == 6 and sorted(config["target_modules"]) == sorted(mods)
    for m in mods:
        want = 2.0 * s1[f"{m}.lora_B.weight"] @ s1[f"{m}.lora_A.weight"]
        if m == mods[0]:
            want = want + 8.0 * s2[f"{m}.lora_B.weight"] @ s2[f"{m}.lora_A.weight"]
        got = state[f"{m}.lora_B.weight"] @ state[f"{m}.lora_A.weight"]
        assert torch.allclose(got, want, atol=1e-5)


# ------------------------------------------------------------------------------------------------ data

def test_batches_split_over_processes_and_cross_epochs():
    data = TrainData([{"row": i} for i in range(7)], [])
    for step in range(5):
        whole = [r["row"] for r in data.vqa_batch(step, 4, seed=3)]
        halves = [r["row"] for rank in (0, 1) for r in data.vqa_batch(step, 4, rank, 2, seed=3)]
        assert whole == halves
    first_epoch = [r["row"] for s in range(7) for r in data.vqa_batch(s, 1, seed=3)]
    assert sorted(first_epoch) == list(range(7))
    assert [r["row"] for r in data.vqa_batch(2, 4, seed=3)] == [r["row"] for r in data.vqa_batch(2, 4, seed=3)]


def test_training_answer_follows_vqav2():
    assert training_answer({"multiple_choice_answer": "2", "answers": ["3"] * 10}) == "2"
    answers = [{"answer": a} for a in ["red"] * 3 + ["blue"] * 5 + ["green"] * 2]
    assert training_answer({"answers": answers}) == "blue"
    assert training_answer({"answer": " yes "}) == "yes" and training_answer({}) is None


# ------------------------------------------------------------------------------------------------ config, CLI

def test_presets_ablations_and_labels():
    assert TrainConfig(method="unigame").finalise().label() == "unigame"
    cfg = TrainConfig(method="unigame", filter="cosine", buffer=False, explicit=["filter", "buffer"]).finalise()
    assert (cfg.decode, cfg.label()) == (True, "unigame(filter=cosine,no-buffer)")
    cfg = TrainConfig(method="adv_embed", filter="cosine", buffer=True, explicit=["filter", "buffer"]).finalise()
    assert cfg.label() == "adv_embed(filter=cosine,buffer)" and not cfg.decode
    cfg = TrainConfig(method="unigame", eps_max=0.05, explicit=["eps_max"]).finalise()
    assert cfg.label() == "unigame(eps=0.05)"
    ref = TrainConfig(method="unigame", reference_compat=True).finalise()
    assert (ref.gen_lr, ref.und_lr, ref.decode, ref.tau_quantile, ref.label()) == (3e-2, 3e-6, False, 0.8,
                                                                                   "unigame(reference)")
    assert ref.ce_reduction == "sample" and ref.delta_dtype == "float32" and ref.train_mode   # no defects


@pytest.mark.parametrize("argv, message", [
    (["train", "--method", "unigam"], "did you mean 'unigame'"),
    (["train", "--method", "sft", "--no-buffer"], "no effect with --method sft"),
    (["train", "--method", "adv_embed", "--filter", "clip"], "needs decoded images"),
    (["train", "--data", "/no/such/vqa.jsonl"], "no such file or folder"),
    (["train", "--eval-limit", "3"], "need --eval TASKS"),
    (["train", "--ratio", "one"], "expected C:U"),
    (["train", "--stepz", "3"], "unrecognized arguments"),
    (["train", "--method", "sft", "--reference-compat"], "use it with --method unigame"),
    (["train", "--und-lr", "-1"], "--und-lr must be positive (got -1.0)"),         # was the optimiser's traceback
    (["train", "--beta", "-0.5"], "--beta must be 0 or more"),
    (["train", "--max-grad-norm", "-1"], "--max-grad-norm must be 0 or more"),
    (["train", "--lora-dropout", "1"], "--lora-dropout must be in [0, 1)"),
    (["train", "--warmup", "-2"], "--warmup must be 0 or more"),
])
def test_bad_flags_give_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_max_grad_norm_0_turns_clipping_off_as_its_help_says():
    import torch

    from unigame.cli import build_parser, config_from_args
    from unigame.dist import Dist
    from unigame.optim import Player

    cfg = config_from_args(build_parser().parse_args(["train", "--max-grad-norm", "0", "--data", "shapes"]))
    weight = torch.nn.Parameter(torch.zeros(2))
    player = Player("U", [weight], 1e-3, cfg, Dist())
    (weight * torch.tensor([300.0, 400.0])).sum().backward()
    info = player.update()
    assert cfg.max_grad_norm == 0 and info["grad_norm"] == pytest.approx(500.0) and not info["skipped"]


def test_init_from_a_folder_that_is_neither_checkpoint_nor_model_names_the_flag(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--init-from", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --init-from {tmp_path / 'empty'}: neither a trainer checkpoint") and "\n" not in err


def test_local_vqa_and_caption_data(tmp_path):
    from PIL import Image

    from harness.errors import DataError
    from unigame import data as data_mod

    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"im{i}.png")
    vqa = tmp_path / "vqa.jsonl"
    vqa.write_text("".join(json.dumps({"question_id": i, "question": f"q{i}?", "image": f"im{i}.png",
                                       "answers": [{"answer": "red"}] * 3}) + "\n" for i in range(3)))
    caps = tmp_path / "cc3m"
    caps.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (0, 40 * i, 0)).save(caps / f"c{i}.jpg")
    (caps / "captions.jsonl").write_text("".join(json.dumps({"image": f"c{i}.jpg", "caption": f"a photo {i}"}) + "\n"
                                                 for i in range(2)))
    data = data_mod.load(str(vqa), str(caps), image_size=32)
    assert [r["answer"] for r in data.vqa] == ["red"] * 3 and [r["row"] for r in data.vqa] == [0, 1, 2]
    assert data_mod.pil(data.vqa[1]["image"]).getpixel((0, 0)) == (40, 0, 0)
    assert [c["caption"] for c in data.captions] == ["a photo 0", "a photo 1"]
    (caps / "captions.jsonl").write_text(json.dumps({"image": "c0.jpg", "alt": "x"}) + "\n")
    with pytest.raises(DataError, match="caption column"):
        data_mod.load(str(vqa), str(caps), image_size=32)


def test_world_post_training_stream_asks_what_the_evaluation_asks_never_on_its_images():
    """--data shapes continues the bundled model's pretraining mix: the exact prompts the POPE and VQAv2 tasks send
    (POPE's yes and no in balance), multiple choice and UnifiedBench captions, on scenes no benchmark uses."""
    import hashlib

    from harness.world.training_mix import MC_SUFFIX, UAE_CAPTION_PROMPT
    from tasks.vqav2.task import build_prompt
    from tasks.world import build
    from unigame.data import shapes_rows

    vqa, caps = shapes_rows(300, 64)
    prompts = {r["question"] for r in vqa}
    pope, vqav2 = build("pope", n_images=20), build("vqav2", n=200)
    assert all(f"{r['question'].strip()}\nAnswer the question using a single word or phrase." in prompts
               for r in pope)                                       # the POPE task's own prompt, every class
    assert sum(build_prompt(r["question"]) in prompts for r in vqav2) >= 0.6 * len(vqav2)
    pope_like = [r["answer"] for r in vqa if r["question"].startswith("Is there a ")
                 and r["question"].endswith("single word or phrase.")]
    assert len(pope_like) > 100 and 0.4 <= pope_like.count("yes") / len(pope_like) <= 0.6
    assert any(r["question"].endswith(MC_SUFFIX) and r["answer"] in "ABCD" for r in vqa)
    assert any(r["question"] == UAE_CAPTION_PROMPT for r in vqa) and caps
    assert all(r["scene"] and r["caption"] for r in vqa)         # what the CLIP filter and the scene check read

    def digest(im):
        return hashlib.sha256(im.convert("RGB").tobytes()).hexdigest()

    evaluated = {digest(r["image"]) for r in pope + vqav2}
    assert not evaluated & {digest(r["image"]) for r in vqa}


def test_init_from_accepts_its_base_model_spelled_another_way_and_refuses_another(tmp_path, monkeypatch):
    """--model is compared with the checkpoint's base model as --resume compares them: the same folder through a
    relative path or a symlink is the same model."""
    import json

    from harness.errors import HarnessError
    from unigame.modeling import init_source

    base, other = tmp_path / "models" / "base", tmp_path / "models" / "other"
    base.mkdir(parents=True)
    other.mkdir()
    (tmp_path / "link").symlink_to(base)
    ckpt = tmp_path / "ckpt"
    (ckpt / "adapter").mkdir(parents=True)
    (ckpt / "adapter" / "adapter_config.json").write_text("{}")
    (ckpt / "harness.json").write_text(json.dumps({"base_model": str(base), "adapter_dir": "adapter",
                                                   "method": "sft"}))
    monkeypatch.chdir(tmp_path)
    for spelling in (str(base), "models/base", "link", "./models/../models/base"):
        assert init_source(str(ckpt), spelling)["base_model"] == str(base)
    with pytest.raises(HarnessError, match="was trained on"):
        init_source(str(ckpt), str(other))


@pytest.mark.parametrize("adapter_dir", ["../elsewhere", "/abs/elsewhere", "adapter/../../elsewhere", 7])
def test_a_checkpoints_adapter_dir_must_stay_inside_it(tmp_path, adapter_dir):
    """harness.json's adapter_dir names a folder inside the checkpoint: a copied or downloaded one must not make
    evaluation or --init-from load (and stacking copy) another folder's LoRA."""
    import json

    from harness.errors import HarnessError
    from harness.models.checkpoints import locate
    from unigame.modeling import init_source

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "adapter_config.json").write_text("{}")
    ckpt = tmp_path / "ckpt"
    (ckpt / "adapter").mkdir(parents=True)
    if isinstance(adapter_dir, str) and adapter_dir.startswith("/abs"):
        adapter_dir = str(elsewhere)
    (ckpt / "harness.json").write_text(json.dumps({"base_model": "tiny-janus", "adapter_dir": adapter_dir}))
    for load in (lambda: init_source(str(ckpt), None), lambda: locate(str(ckpt))):
        with pytest.raises(HarnessError, match=r"adapter_dir .* is not a folder inside the checkpoint"):
            load()


def test_training_ended_by_sigterm_says_how_to_resume_and_leaves_the_handler_as_it_was(monkeypatch, capsys):
    import os
    import signal
    import time

    import unigame.run

    def terminated_mid_training(cfg):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)                       # the handler raises here, long before this ends
        raise AssertionError("SIGTERM did not stop training")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(unigame.run, "train", terminated_mid_training)
    assert main(["train", "--data", "shapes"]) == 143
    err = capsys.readouterr().err.strip()
    assert err == "terminated (SIGTERM); rerun the same command with --resume to continue from the last checkpoint"
    assert signal.getsignal(signal.SIGTERM) == before


def test_training_that_finds_the_disk_full_ends_in_one_line_saying_how_to_resume(monkeypatch, capsys):
    import errno

    import unigame.run

    def disk_full(cfg):                     # test double: a checkpoint write on a full disk
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/checkpoints/.tmp-step000500/lora.safetensors")

    monkeypatch.setattr(unigame.run, "train", disk_full)
    assert main(["train", "--data", "shapes"]) == 3
    err = capsys.readouterr().err.strip()
    assert err == ("error: no space left writing runs/x/checkpoints/.tmp-step000500/lora.safetensors (No space left "
                   "on device); free some, or choose another --output, then rerun the same command with --resume to "
                   "continue from the last checkpoint")
