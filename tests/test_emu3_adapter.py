"""The Emu3 adapter on random-config Emu3 folders built here (no download): batched understanding and generation
that agree with transformers' own Emu3 generate, seeded images, the chat/gen halves, checkpoints, fingerprints."""
import json
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from PIL import Image as PILImage  # noqa: E402

from harness.errors import HarnessError, WeightsError  # noqa: E402
from harness.models import resolve_model  # noqa: E402
from harness.models.emu3 import CHAT_HUB, GEN_HUB, Emu3Adapter  # noqa: E402
from harness.types import Image, Request  # noqa: E402
from tinyfactory.emu3_build import save_random_emu3  # noqa: E402
from conftest import ROOT  # noqa: E402

COMMIT = "c" * 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("emu3") / "tiny-random"
    save_random_emu3(path, seed=1)
    return path


@pytest.fixture(scope="module")
def model(folder):
    return resolve_model(str(folder), {"batch_size": 8})


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "harness-cache"))


def _hub(tmp_path, source, repo):
    """A hub snapshot of `source` in the (test's own) Hugging Face cache."""
    root = tmp_path / "hf" / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    shutil.copytree(source, root / "snapshots" / COMMIT, dirs_exist_ok=True)


def _img(rgb, size=(32, 32)):
    im = PILImage.new("RGB", size, (225, 225, 225))
    im.paste(rgb, (4, 4, 20, 20))
    return Image(pil=im)


def _ask(text, *images, **params):
    return Request("model", "understand", text=text, images=tuple(images), params={"max_new_tokens": 6, **params})


def _gen(text, seed, **params):
    return Request("model", "generate", text=text, seed=seed, params=params)


def test_a_folder_resolves_to_emu3_without_loading_and_the_fingerprint_follows_settings(folder):
    m = resolve_model(str(folder))
    assert isinstance(m, Emu3Adapter) and m._loaded == {} and m.kinds == ("understand", "generate")
    fp = m.fingerprint()
    assert fp == resolve_model(str(folder)).fingerprint() and m._loaded == {}
    info = m.describe()
    assert info["halves"]["chat"] == info["halves"]["gen"] and info["dtype"] == "float32"
    assert info["native_image_size"] == 32          # the generation config's image_area, 32 x 32
    others = [{"dtype": "bfloat16"}, {"guidance_scale": 2}, {"top_k": 5}, {"negative_prompt": "ugly"},
              {"image_area": 64 * 64}, {"system_prompt": ""}]
    fps = {resolve_model(str(folder), args).fingerprint() for args in others}
    assert fp not in fps and len(fps) == len(others)


def test_the_fingerprint_follows_the_weights(tmp_path, folder):
    local = tmp_path / "local"
    shutil.copytree(folder, local)
    fp = resolve_model(str(local)).fingerprint()
    weights = local / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert resolve_model(str(local)).fingerprint() != fp


def test_understand_is_batched_independent_of_its_neighbours_and_agrees_with_transformers(model):
    reqs = [_ask("What color is the circle?", _img((220, 40, 40))),
            _ask("How many?", _img((30, 100, 220)), _img((40, 160, 60), (48, 24))),   # two images, one wide
            _ask("What color is the square? Answer A or B.", _img((40, 160, 60), (24, 40))),
            _ask("yes or no")]                                                      # no image at all
    together = model.understand(reqs)
    alone = [model.understand([r])[0] for r in reqs]
    assert all(r.ok for r in together) and all(r.text for r in together)
    assert [r.text for r in together] == [r.text for r in alone]
    # the same answer as transformers' own Emu3 generate (greedy, no guidance) on the same prompt
    from harness.models.emu3_decode import understanding_prompt

    m, processor = model.load("chat")
    enc = processor(text=[understanding_prompt(processor, "What color is the circle?", 1)],
                    images=[reqs[0].images[0].pil()], return_tensors="pt")
    ids = m.generate(**enc, max_new_tokens=6, do_sample=False, guidance_scale=1.0)[0, enc["input_ids"].shape[1]:]
    assert processor.tokenizer.decode(ids, skip_special_tokens=True).strip() == together[0].text


def test_sampled_answers_depend_on_seed_not_on_neighbours(model):
    r = _ask("What color is the circle?", _img((220, 40, 40)), do_sample=True, temperature=1.5, max_new_tokens=8)
    a = model.understand([r.replace(seed=7), r.replace(seed=8, text="How many?")])[0]
    b = model.understand([r.replace(seed=7)])[0]
    c = model.understand([r.replace(seed=9)])[0]
    assert a.text == b.text and a.text != c.text


def test_generate_one_seeded_image_per_request_whatever_the_batch(model):
    batch = [_gen("a red circle", 1), _gen("two blue squares and a green triangle", 2), _gen("a red circle", 2),
             _gen("a red circle", 1)]
    out = model.generate(batch)
    assert all(r.ok and len(r.images) == 1 for r in out)
    h = [r.images[0].sha256 for r in out]
    assert h[0] == h[3] and h[0] != h[2]                 # same seed, same image; another seed, another image
    alone = model.generate([_gen("a red circle", 1)])[0].images[0].sha256
    other = model.generate([_gen("yes", 5), _gen("a red circle", 1), _gen("A B C D green", 9)])[1].images[0].sha256
    assert alone == h[0] == other
    assert out[0].images[0].pil().size == (32, 32)
    sized = model.generate([_gen("a red circle", 1, size=48), _gen("", 1), _gen(None, 1)])
    assert sized[0].images[0].pil().size == (48, 48)
    assert sized[1].ok and not sized[2].ok      # an empty caption is a prompt (UnifiedBench); no text is not


def test_guided_generation_is_transformers_generate_under_emu3s_layout_constraint(model):
    """Greedy codes equal transformers' generate with the negative prompt (classifier-free guidance) and the
    prefix_allowed_tokens_fn of transformers' Emu3 example: w visual tokens then an end-of-line, h times."""
    from harness.models.emu3_decode import generation_inputs, generators_for, sample_image_codes

    m, processor = model.load("gen")
    tok, negative = processor.tokenizer, model.defaults()["negative_prompt"]
    h = w = 4
    both = generation_inputs(processor, ["a red circle", negative], (h, w))
    ours = sample_image_codes(m, both["input_ids"], both["attention_mask"], (h, w), guidance=[3.0],
                              temperature=[0.0], generators=generators_for([0], "cpu"))
    cond, neg = generation_inputs(processor, ["a red circle"], (h, w)), generation_inputs(processor, [negative], (h, w))
    vocab = m.vocabulary_mapping

    def allowed(_, ids):
        offset = ids.shape[0] - int((ids == tok.image_wrapper_token_id).nonzero()[0, 0])
        if offset % (w + 1) == 0:
            return [vocab.eol_token_id]
        if offset > (w + 1) * h:
            return [[tok.eof_token_id, tok.eoi_token_id, tok.eos_token_id][min(offset - (w + 1) * h - 1, 2)]]
        return vocab.image_tokens

    out = m.generate(**cond, max_new_tokens=(w + 1) * h + 3, prefix_allowed_tokens_fn=allowed, do_sample=False,
                     guidance_scale=3.0, negative_prompt_ids=neg["input_ids"],
                     negative_prompt_attention_mask=neg["attention_mask"])
    new = out[:, cond["input_ids"].shape[1]:]
    theirs = vocab.convert_bpe2img(new[:, :-3].view(-1, h, w + 1)).flatten(1)
    assert torch.equal(ours, theirs.long())
    assert len(set(ours[0].tolist())) > 1
    pixels = m.decode_image_tokens(image_tokens=new, height=h, width=w)
    assert torch.allclose(pixels, m.model.vqmodel.decode(ours.view(1, h, w)))


def test_guidance_one_skips_the_negative_prompt(model):
    r = _gen("a red circle", 3, guidance_scale=1.0, temperature=0)
    a, b = model.generate([r, r.replace(seed=4)])
    assert a.images[0].sha256 == b.images[0].sha256     # greedy: the seed does not matter


def test_the_pair_answers_with_chat_and_draws_with_gen_and_each_half_says_what_it_lacks(tmp_path, folder):
    other = tmp_path / "other"
    save_random_emu3(other, seed=5)
    _hub(tmp_path, folder, CHAT_HUB)
    _hub(tmp_path, other, GEN_HUB)
    pair = resolve_model("emu3")
    assert pair.kinds == ("understand", "generate") and pair.halves["chat"].hub_id == CHAT_HUB
    assert pair.halves["gen"].hub_id == GEN_HUB and pair._loaded == {}
    ask = [_ask("What color is the circle?", _img((220, 40, 40)))]
    assert pair.understand(ask)[0].text == resolve_model(str(folder)).understand(ask)[0].text
    draw = [_gen("a red circle", 1)]
    assert pair.generate(draw)[0].images[0].sha256 == resolve_model(str(other)).generate(draw)[0].images[0].sha256
    chat, gen = resolve_model("emu3-chat"), resolve_model("emu3-gen")
    assert chat.kinds == ("understand",) and gen.kinds == ("generate",)
    assert len({pair.fingerprint(), chat.fingerprint(), gen.fingerprint()}) == 3
    with pytest.raises(HarnessError, match=r"emu3-chat has no generation weights.*--model emu3") as e:
        chat.run("generate", draw)
    assert "\n" not in str(e.value) and chat._loaded == {}
    with pytest.raises(HarnessError, match=r"emu3-gen has no understanding weights"):
        gen.run("understand", ask)
    assert resolve_model(CHAT_HUB).kinds == ("understand",)          # a known half by its hub id
    with pytest.raises(HarnessError, match="no gen half"):
        resolve_model("emu3-chat", {"gen": str(other)})
    moved = resolve_model("emu3", {"gen": str(folder)})              # a half from a local folder
    assert moved.halves["gen"].kind == "local" and moved.fingerprint() != pair.fingerprint()


def test_missing_weights_are_one_line_naming_the_download(tmp_path):
    with pytest.raises(WeightsError) as e:
        resolve_model("emu3-gen")
    msg = str(e.value)
    assert f"hf download {GEN_HUB}" in msg and "model.safetensors" in msg and "\n" not in msg


def test_a_run_that_needs_the_missing_half_stops_with_one_line(tmp_path, folder):
    _hub(tmp_path, folder, CHAT_HUB)
    out = subprocess.run([sys.executable, "-m", "harness", "run", "--model", "emu3-chat", "--tasks", "geneval",
                          "--data", "shapes", "--limit", "1", "--no-progress", "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert out.returncode == 2, out.stderr[-2000:]
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "no generation weights" in err[0] and "--model emu3" in err[0]
    assert err[0].startswith("error: --tasks geneval: needs image generation")      # refused before any work
    assert not list((tmp_path / "o").glob("**/manifest.json"))


def _checkpoint(tmp_path, base, base_model):
    from peft import LoraConfig, get_peft_model
    from transformers import Emu3ForConditionalGeneration

    m = Emu3ForConditionalGeneration.from_pretrained(base, use_safetensors=True)
    peft_model = get_peft_model(m, LoraConfig(r=4, lora_alpha=8,
                                              target_modules=r"model\.text_model\.layers\.\d+\.self_attn\.(q|v)_proj"))
    torch.manual_seed(0)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.5)
    ckpt = tmp_path / "ckpt"
    peft_model.save_pretrained(ckpt)
    (ckpt / "harness.json").write_text(json.dumps({"adapter": "emu3", "base_model": base_model,
                                                   "method": "unigame", "hyper_parameters": {}}))
    return ckpt


def _loss(adapter):
    hooks = adapter.training_hooks()
    b = hooks.understanding_batch([_img((220, 40, 40)).pil()], ["What color is the circle?"], ["red"])
    with torch.no_grad():
        return float(hooks.answer_loss(b)[0])


def test_trainer_checkpoints_apply_their_lora_merged_or_not(tmp_path, folder):
    ckpt = _checkpoint(tmp_path, folder, str(folder))
    merged, unmerged, plain = (resolve_model(str(ckpt)), resolve_model(str(ckpt), {"merge_lora": False}),
                               resolve_model(str(folder)))
    assert isinstance(merged, Emu3Adapter) and merged.halves["chat"].kind == "checkpoint"
    assert len({merged.fingerprint(), unmerged.fingerprint(), plain.fingerprint()}) == 3
    a, b, c = _loss(merged), _loss(unmerged), _loss(plain)
    assert abs(a - b) < 1e-3 and abs(a - c) > 1e-3
    # a checkpoint of the pair: the LoRA is on the chat half, generation stays Emu3-Gen's
    _hub(tmp_path, folder, CHAT_HUB)
    _hub(tmp_path, folder, GEN_HUB)
    on_pair = resolve_model(str(_checkpoint(tmp_path / "pair", folder, "emu3")))
    assert on_pair.halves["chat"].kind == "checkpoint" and on_pair.halves["chat"].base.hub_id == CHAT_HUB
    assert on_pair.halves["gen"].kind == "hub" and on_pair.halves["gen"].adapter_dir is None


def test_a_hub_id_is_dispatched_by_its_model_type(tmp_path, folder):
    _hub(tmp_path, folder, "acme/emu3-mini")
    m = resolve_model("acme/emu3-mini")
    assert isinstance(m, Emu3Adapter) and m.halves["chat"].commit == COMMIT


def test_unload_then_answer_again(folder):
    m = resolve_model(str(folder))
    first = m.understand([_ask("red", _img((220, 40, 40)))])[0].text
    m.unload()
    assert m._loaded == {}
    assert m.understand([_ask("red", _img((220, 40, 40)))])[0].text == first


def test_the_engine_runs_tasks_on_emu3_and_resumes_without_loading(folder, tmp_path, doubles):
    from harness.api import RunConfig, evaluate

    config = RunConfig(output=tmp_path / "out", limit=4, batch_size=3, progress=False)
    first = evaluate(resolve_model(str(folder)), ["double_sum", "double_roundtrip"], config)
    assert first.results["double_roundtrip"].to_dict()["counts"]["failed"] == 0
    again_model = resolve_model(str(folder))
    again = evaluate(again_model, ["double_sum", "double_roundtrip"], config)
    assert again_model._loaded == {}
    assert again.results["double_sum"].to_dict()["metrics"] == first.results["double_sum"].to_dict()["metrics"]
