"""Pretraining pipeline of the bundled tiny Janus: data, tokenizer, packing, and a --quick end-to-end run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tinyfactory import data  # noqa: E402
from tinyfactory.build import build_random_model, build_tokenizer  # noqa: E402
from conftest import ROOT  # noqa: E402


def test_examples_are_a_function_of_part_rank_and_step():
    a = data.understanding_example(data.stream("und", 0, 5, 1))
    b = data.understanding_example(data.stream("und", 0, 5, 1))
    c = data.understanding_example(data.stream("und", 1, 5, 1))
    assert a["segments"] == b["segments"] and a["images"][0].tobytes() == b["images"][0].tobytes()
    assert a["segments"] != c["segments"]
    p1, i1 = data.generation_example(data.stream("gen", 0, 0, 0))
    p2, i2 = data.generation_example(data.stream("gen", 0, 0, 0))
    assert p1 == p2 and i1.tobytes() == i2.tobytes()


def test_yes_no_answers_are_balanced_and_prompts_use_the_task_formats():
    segs = [s for i in range(150) for s in data.understanding_example(data.stream("t", 0, 0, i))["segments"]]
    yn = [a.lower() for _, a in segs if a.lower() in ("yes", "no")]
    assert 0.4 < yn.count("yes") / len(yn) < 0.6
    prompts = [p for p, _ in segs]
    assert any(p.endswith("\n" + data.VQA_SUFFIX) for p in prompts)
    assert any(p.endswith(data.MC_SUFFIX) for p in prompts)
    assert any(p.endswith("Please answer Yes or No.") for p in prompts)
    assert data.UAE_CAPTION_PROMPT in prompts
    letters = [a for p, a in segs if p.endswith(data.MC_SUFFIX)]
    assert set(letters) <= set("ABCD") and len(set(letters)) > 2


def test_the_mix_spells_its_prompts_as_the_tasks_send_them():
    """The world's training mix keeps its own copy of the tasks' instructions (harness does not import tasks); a
    task whose prompt changes must take the mix with it, or the bundled model trains on prompts it is never asked."""
    from tasks.mmbench.scoring import LMMS_INSTRUCTION
    from tasks.mmmu.scoring import MULTI_CHOICE_INSTRUCTION, OPEN_INSTRUCTION
    from tasks.pope.task import SUFFIX as POPE_SUFFIX
    from tasks.unified_bench.scoring import CAPTION_PROMPT
    from tasks.vqav2.task import build_prompt

    assert build_prompt("How many circles?") == f"How many circles?\n{data.VQA_SUFFIX}"
    assert POPE_SUFFIX == OPEN_INSTRUCTION == data.VQA_SUFFIX
    assert LMMS_INSTRUCTION == MULTI_CHOICE_INSTRUCTION == data.MC_SUFFIX
    assert CAPTION_PROMPT == data.UAE_CAPTION_PROMPT


def test_focus_multipliers_shift_the_question_mix_and_unknown_families_are_refused():
    plain = data.family_probabilities()
    focus = data.family_probabilities({"pope": 8.0})
    pope = list(data.FAMILY_WEIGHTS).index("pope")
    assert focus.sum() == pytest.approx(1.0) and focus[pope] > 3 * plain[pope]

    def pope_share(p):
        segs = [q for i in range(40) for q, _ in data.understanding_example(
            data.stream("mix", 0, 0, i), caption_p=0.0, mc_share=0.0, yn_share=0.0, family_p=p)["segments"]]
        return sum(q.startswith("Is there a") and q.split("\n")[0].endswith("in the image?") for q in segs) / len(segs)

    assert pope_share(focus) > 2 * pope_share(plain)
    with pytest.raises(ValueError, match="popes"):
        data.family_probabilities({"popes": 2.0})
    from tinyfactory.pretrain import recipe_for

    with pytest.raises(SystemExit, match="--set focus_families: unknown question families \\['popes'\\]"):
        recipe_for(False, 0, {"focus_families": {"popes": 2.0}})


def test_tokenizer_covers_training_and_benchmark_text():
    from tasks.world import build

    tok = build_tokenizer(data.vocabulary_words(200))
    texts = data.training_texts(60)
    texts += [r["question"] for r in build("vqav2", n=30)] + [r["question"] for r in build("pope", n_images=5)]
    texts += [r["prompt"] for r in build("geneval", n=30)] + [r["Prompt"] for r in build("wise", n=12)]
    unknown = [t for t in texts if tok.unk_token_id in tok(t)["input_ids"]]
    assert not unknown, unknown[:3]
    assert tok.decode(tok(" A", add_special_tokens=False)["input_ids"]) == "A"   # case is kept for letters


def test_packed_segments_compute_exactly_the_single_prompt_loss():
    """Block-masked packing = each (image, question, answer) run on its own, as inference formats it."""
    from harness.models.janus_hooks import JanusHooks
    from tinyfactory.steps import Packer, understanding_loss

    torch.set_num_threads(1)
    model, processor = build_random_model(data.vocabulary_words(50), image_size=64, hidden=64, layers=2,
                                          vision_hidden=32, vision_layers=1, codes=64, vq_latent=32)
    exs = [data.understanding_example(data.stream("pack", 0, 0, i), n_segments=3, caption_p=1.0) for i in range(2)]
    with torch.no_grad():
        packed, _ = understanding_loss(model, Packer(processor).pack(exs))
        hooks = JanusHooks(model, processor)
        single = [hooks.answer_loss(hooks.understanding_batch([ex["images"]], [q], [a]))[0]
                  for ex in exs for q, a in ex["segments"]]
    assert torch.allclose(packed, torch.stack(single).mean(), atol=1e-4)


@pytest.mark.slow
def test_quick_pretraining_lowers_both_losses_and_resumes(tmp_path):
    cmd = [sys.executable, "-m", "tinyfactory.pretrain", "--quick", "--workdir", str(tmp_path / "w"),
           "--out", str(tmp_path / "model")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    meta = json.loads((tmp_path / "model" / "training.json").read_text())
    losses = meta["losses"]
    assert losses["understanding"]["loss"]["last"] < losses["understanding"]["loss"]["first"]
    assert losses["joint"]["gen"]["last"] < losses["joint"]["gen"]["first"]
    assert losses["vq"]["loss"]["last"] < losses["vq"]["loss"]["first"]
    assert meta["seed"] == 0 and meta["world_version"] and meta["steps"]["joint"] > 0
    assert meta["steps"]["focus"] > 0 and losses["focus"]["gen"]["last"] > 0     # the shared LM keeps drawing
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "phase" not in again.stdout      # finished parts are not retrained

    from harness.models import resolve_model
    from harness.types import Image, Request

    m = resolve_model(str(tmp_path / "model"))
    img = data.understanding_example(data.stream("q", 0, 0, 0))["images"][0]
    r = m.understand([Request("model", "understand", text="What color is the circle?", images=(Image(pil=img),),
                              params={"max_new_tokens": 4})])[0]
    g = m.generate([Request("model", "generate", text="a photo of a red circle", seed=0)])[0]
    assert r.ok and g.ok and g.images[0].pil().size == (64, 64)


def test_chance_levels_come_from_each_question_family(tmp_path):
    from tinyfactory.heldout import question_type_chance

    answers = lambda a, b: [a] * 8 + [b] * 2     # noqa: E731  (8 annotators agree, 2 dissent)
    docs = [{"question": "How many squares are there?", "question_type": "how many", "answers": answers(str(k), "9")}
            for k in range(4)]
    docs += [{"question": "Is there a green square in the image?", "question_type": "is there a", "answers": answers(a, b)}
             for a, b in (("yes", "no"), ("no", "yes"))]
    chance = question_type_chance(docs, "official")
    assert chance["how many"]["chance"] == pytest.approx(1 / 4)
    assert chance["is there a"]["chance"] == pytest.approx(1 / 2)
    # a wrong yes/no guess still earns 0.6 from the two dissenting annotators
    assert chance["is there a"]["guess_score"] == pytest.approx((1 + 0.6) / 2)


def test_pretraining_checkpoints_hold_no_pickle_and_refuse_one(tmp_path):
    import os
    import pickle

    from harness.errors import HarnessError
    from tinyfactory.workers import load_ckpt, save_atomic

    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "opt": {"state": {0: {"step": torch.tensor(3.0)}},
                                                                      "param_groups": [{"betas": (0.9, 0.98)}]},
             "step": 7}
    save_atomic(state, tmp_path / "vq.safetensors")
    back = load_ckpt(tmp_path / "vq.safetensors")
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["step"] == 7
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.98) and 0 in back["opt"]["state"]

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    (tmp_path / "vision.pt").write_bytes(pickle.dumps({"model": Payload()}))       # an earlier version's name
    with pytest.raises(HarnessError, match="refused"):
        load_ckpt(tmp_path / "vision.safetensors")
    (tmp_path / "joint.safetensors").write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(HarnessError, match="not a readable"):
        load_ckpt(tmp_path / "joint.safetensors")
    assert not (tmp_path / "ran").exists()


def test_emu3_packed_segments_compute_exactly_the_single_prompt_loss(tmp_path):
    """The same packing for Emu3: each segment scores what `Emu3Hooks` (the layout inference and the trainer
    use) scores for that question alone, images read as VQ codes through the LM."""
    from harness.models.emu3_decode import merge_visual
    from harness.models.emu3_hooks import Emu3Hooks
    from tinyfactory.emu3_build import save_random_emu3
    from tinyfactory.emu3_parts import Emu3Arch
    from tinyfactory.steps import packed_answer_loss

    torch.set_num_threads(1)
    model, processor = save_random_emu3(tmp_path / "m", data.vocabulary_words(50), image_size=64, hidden=64,
                                        layers=2, codes=64, vq_base=32, vq_latent=4)
    exs = [data.understanding_example(data.stream("pack", 0, 0, i), n_segments=3, caption_p=1.0) for i in range(2)]
    hooks = Emu3Hooks(model, processor)
    with torch.no_grad():
        batch = Emu3Arch().packer(processor).pack(exs)
        embeds = merge_visual(model, batch["input_ids"], hooks.visual_tokens(batch["pixel_values"]))
        packed, _, _ = packed_answer_loss(model.model.text_model, model.lm_head, embeds, batch)
        single = [hooks.answer_loss(hooks.understanding_batch([ex["images"]], [q], [a]))[0]
                  for ex in exs for q, a in ex["segments"]]
    assert torch.allclose(packed, torch.stack(single).mean(), atol=1e-4)


def _mark_then_abort(marker: str) -> None:
    Path(marker).write_text("{}")
    os.abort()          # what gloo's threads did at a worker's exit: std::terminate, SIGABRT


def _abort(marker: str) -> None:
    os.abort()


def test_a_part_that_crashes_after_marking_itself_done_does_not_fail_the_phase(tmp_path, capfd):
    from tinyfactory.pretrain import run_parallel

    done = tmp_path / "joint.done"
    run_parallel([(_mark_then_abort, (str(done),)), (_abort, (str(done),))], [done])
    assert "after its part was saved and marked done" in capfd.readouterr().out


def test_a_part_that_crashes_before_it_is_done_fails_with_its_exit_code_and_python_stack(tmp_path, capfd):
    from tinyfactory.pretrain import run_parallel

    done = tmp_path / "joint.done"
    with pytest.raises(SystemExit, match=r"exit codes \[-6\]\); rerun to resume"):
        run_parallel([(_abort, (str(done),))], [done])
    err = capfd.readouterr().err
    assert "Fatal Python error: Aborted" in err and "_abort" in err


@pytest.mark.slow
def test_quick_emu3_pretraining_lowers_its_losses_resumes_and_loads_as_tiny_emu3_does(tmp_path):
    cmd = [sys.executable, "-m", "tinyfactory.pretrain", "--arch", "emu3", "--quick", "--workdir",
           str(tmp_path / "w"), "--out", str(tmp_path / "model")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    meta = json.loads((tmp_path / "model" / "training.json").read_text())
    losses = meta["losses"]
    assert meta["model"] == "tiny-emu3" and "vision" not in meta["steps"] and meta["recipe"]["arch"] == "emu3"
    assert losses["vq"]["loss"]["last"] < losses["vq"]["loss"]["first"]
    assert losses["understanding"]["loss"]["last"] < losses["understanding"]["loss"]["first"]
    assert losses["joint"]["gen"]["last"] < losses["joint"]["gen"]["first"]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_type"] == "emu3"
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "phase" not in again.stdout

    from harness.models import resolve_model
    from harness.types import Image, Request

    m = resolve_model(str(tmp_path / "model"))
    assert m.name == "emu3"
    img = data.understanding_example(data.stream("q", 0, 0, 0))["images"][0]
    r = m.understand([Request("model", "understand", text="What color is the circle?", images=(Image(pil=img),),
                              params={"max_new_tokens": 4})])[0]
    g = m.generate([Request("model", "generate", text="a photo of a red circle", seed=0)])[0]
    assert r.ok and g.ok and g.images[0].pil().size == (64, 64)


def test_set_level_targets_answer_every_pope_question_as_the_world_does():
    """The focus phase's set-level targets (tiny-emu3) hold exactly the (colour, shape) pairs POPE's answers say
    are present, in the order the head scores them (colour-major)."""
    from harness.world.scene import COLOR_NAMES, SHAPES
    from harness.world.training_mix import pope_question, scene_for_questions
    from tinyfactory.workers import present_pairs

    for i in range(60):
        rng = data.stream("set", 0, 0, i)
        scene = scene_for_questions(rng)
        q = pope_question(scene, rng)
        colour, shape = q["question"].split()[3:5]
        flat = COLOR_NAMES.index(colour) * len(SHAPES) + SHAPES.index(shape)
        assert present_pairs(scene)[flat].item() == (q["answer"] == "yes")
