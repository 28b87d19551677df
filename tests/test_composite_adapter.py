"""The composite adapter on tiny random-config models built here (no download): a Qwen2-VL image-text-to-text
folder answers, a Stable Diffusion pipeline folder draws. Resolution of every --model spelling, batched and seeded
requests, fingerprints that follow weights and settings, and one-line errors for missing or broken halves."""
import json
import shutil
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image as PILImage  # noqa: E402

from composite_builders import save_tiny_t2i, save_tiny_vlm  # noqa: E402
from harness.errors import HarnessError, WeightsError  # noqa: E402
from harness.models import model_slug, resolve_model  # noqa: E402
from harness.models.composite import CompositeAdapter  # noqa: E402
from harness.types import Image, Request  # noqa: E402

COMMIT = "d" * 40
FAST = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    torch.set_num_threads(1)
    return save_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-qwen2-vl", seed=1)


@pytest.fixture(scope="module")
def t2i(tmp_path_factory):
    return save_tiny_t2i(tmp_path_factory.mktemp("t2i") / "tiny-sd", seed=1)


@pytest.fixture(scope="module")
def pair(vlm, t2i):
    return resolve_model(f"{vlm}+{t2i}", {**FAST, "batch_size": 8})


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


def _img(rgb):
    im = PILImage.new("RGB", (32, 32), (225, 225, 225))
    im.paste(rgb, (4, 4, 20, 20))
    return Image(pil=im)


def _ask(text, *images, seed=0, **params):
    return Request("model", "understand", text=text, images=tuple(images), params={"max_new_tokens": 6, **params},
                   seed=seed)


def _gen(text, seed, **params):
    return Request("model", "generate", text=text, seed=seed, params=params)


def test_every_spelling_resolves_to_the_halves_it_names_without_loading(vlm, t2i):
    short = resolve_model(f"{vlm}+{t2i}")
    long = resolve_model("composite", {"understand": str(vlm), "generate": str(t2i)})
    assert isinstance(short, CompositeAdapter) and short.kinds == long.kinds == ("understand", "generate")
    assert short.fingerprint() == long.fingerprint()             # the same pair, however it is spelled
    assert model_slug(short) == "tiny-qwen2-vl__tiny-sd"        # results folder and board row name both halves
    und, gen = resolve_model(str(vlm)), resolve_model(str(t2i))  # a transformers folder, a diffusers folder
    assert und.kinds == ("understand",) and gen.kinds == ("generate",)
    assert resolve_model("vlm", {"understand": str(vlm)}).fingerprint() == und.fingerprint()
    assert resolve_model("t2i", {"generate": str(t2i)}).fingerprint() == gen.fingerprint()
    assert resolve_model("composite", {"generate": str(t2i)}).kinds == ("generate",)
    assert all(m._understander is None and m._pipeline is None for m in (short, long, und, gen))
    with pytest.raises(HarnessError, match=r"has no generate half \(generate requests need it\): add the generate "
                                           r"half: --model composite"):
        und.run("generate", [_gen("red", 1)])                # called directly, past the engine's check


def test_hub_ids_are_read_from_the_local_cache_and_dispatched_by_what_they_hold(tmp_path, vlm, t2i):
    _hub(tmp_path, vlm, "acme/tiny-vlm")
    _hub(tmp_path, t2i, "acme/tiny-t2i")
    und, gen = resolve_model("acme/tiny-vlm"), resolve_model("acme/tiny-t2i")
    assert isinstance(und, CompositeAdapter) and und.kinds == ("understand",)
    assert gen.kinds == ("generate",) and gen.halves["generate"].identity() == {"hub": "acme/tiny-t2i",
                                                                                 "commit": COMMIT}
    both = resolve_model("acme/tiny-vlm+acme/tiny-t2i")
    assert both.kinds == ("understand", "generate") and both.label == "acme/tiny-vlm+acme/tiny-t2i"
    assert model_slug(both) == "acme__tiny-vlm__acme__tiny-t2i"
    # `revision`, as every adapter takes it, names the one half's snapshot; a pair needs one per half
    pinned = resolve_model("acme/tiny-t2i", {"revision": COMMIT})
    assert pinned.halves["generate"].identity() == {"hub": "acme/tiny-t2i", "commit": COMMIT}
    assert resolve_model("acme/tiny-vlm", {"revision": COMMIT}).fingerprint() == und.fingerprint()
    with pytest.raises(HarnessError, match="a pair has two revisions; give understand_revision and/or "
                                           "generate_revision"):
        resolve_model("acme/tiny-vlm+acme/tiny-t2i", {"revision": COMMIT})


def test_understand_batches_greedy_answers_that_do_not_depend_on_their_neighbours(pair):
    requests = [_ask("what color is the circle ?", _img((220, 40, 40))), _ask("how many", _img((40, 40, 220))),
                _ask("describe the image"), _ask("what shape", _img((40, 200, 40)))]
    batch = pair.understand(requests)
    alone = [pair.understand([r])[0] for r in requests]
    assert all(r.ok and r.text for r in batch)
    assert [r.text for r in batch] == [r.text for r in alone]
    assert len({r.text for r in batch}) > 1             # the answers follow the question and the image


def test_understand_is_the_models_own_greedy_generate_on_its_chat_template(pair, vlm):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = AutoModelForImageTextToText.from_pretrained(vlm), AutoProcessor.from_pretrained(vlm)
    image = _img((220, 40, 40))
    text = processor.apply_chat_template([{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "what color is the circle ?"}]}], add_generation_prompt=True,
        tokenize=False)
    enc = processor(text=[text], images=[image.pil()], return_tensors="pt")
    ids = model.generate(**enc, max_new_tokens=6, do_sample=False)[0, enc["input_ids"].shape[1]:]
    expected = processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
    assert pair.understand([_ask("what color is the circle ?", image)])[0].text == expected


def test_a_folder_of_a_model_that_is_not_image_text_to_text_is_refused(tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(HarnessError, match=r"model_type 'bert' has no adapter \(supported: janus, emu3, any "
                                           r"image-text-to-text model"):
        resolve_model(str(folder))


def test_sampled_answers_follow_the_request_seed(pair):
    def sampled(seed):
        return _ask("describe the image", _img((220, 40, 40)), seed=seed, do_sample=True, temperature=1.0,
                    max_new_tokens=8)

    first = pair.understand([sampled(1), sampled(2), sampled(1)])
    assert first[0].text == first[2].text == pair.understand([sampled(1)])[0].text
    assert len({pair.understand([sampled(s)])[0].text for s in range(1, 6)}) > 1


def test_generate_one_seeded_image_per_request_whatever_the_batch(pair):
    batch = pair.generate([_gen("a red circle", 1), _gen("two blue squares", 2), _gen("a red circle", 2)])
    assert all(r.ok and len(r.images) == 1 for r in batch)
    h = [r.images[0].sha256 for r in batch]
    alone = pair.generate([_gen("a red circle", 1)])[0].images[0].sha256
    assert alone == h[0] and h[0] != h[2]                # the same seed gives the same pixels; another seed, not
    again = pair.generate([_gen("green", 9), _gen("yellow square", 4), _gen("a red circle", 1)])[2]
    assert again.images[0].sha256 == h[0]
    sized = pair.generate([_gen("a red circle", 1, size=48), _gen("", 1), _gen(None, 1)])
    assert sized[0].images[0].pil().size == (48, 48)
    assert sized[1].ok and not sized[2].ok          # an empty caption is a prompt (UnifiedBench); no text is not


class RecordingPipeline:
    """A test double around the real pipeline: records each call's keyword arguments, then draws."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []

    def __call__(self, **kwargs):
        self.calls.append({k: v for k, v in kwargs.items() if k not in ("prompt", "generator")}
                          | {"n": len(kwargs["prompt"]), "generators": len(kwargs["generator"])})
        return self.pipe(**kwargs)


def test_the_pipeline_keeps_its_own_defaults_unless_model_args_set_them(t2i):
    plain = resolve_model(str(t2i))
    assert plain.describe()["generation"]["num_inference_steps"] == 50      # StableDiffusionPipeline's default
    spy = plain._pipeline = RecordingPipeline(plain.pipeline())
    plain.generate([_gen("red", 1)])
    assert spy.calls == [{"num_images_per_prompt": 1, "output_type": "pil", "n": 1, "generators": 1}]
    tuned = resolve_model(str(t2i), {"num_inference_steps": 3, "guidance_scale": 2.0, "images_per_call": 2})
    spy = tuned._pipeline = RecordingPipeline(tuned.pipeline())
    tuned.generate([_gen("red", 1), _gen("blue", 2), _gen("green", 3)])
    assert [(c["num_inference_steps"], c["guidance_scale"], c["n"], c["generators"]) for c in spy.calls] == \
        [(3, 2.0, 2, 2), (3, 2.0, 1, 1)]


def test_several_images_per_call_still_seed_each_image_alone(t2i):
    shared = resolve_model(str(t2i), {**FAST, "images_per_call": 3})
    single = resolve_model(str(t2i), FAST)
    assert shared.fingerprint() != single.fingerprint()      # batched kernels may move the last bits: never mixed
    together = shared.generate([_gen("blue", 5), _gen("a red circle", 1), _gen("a red circle", 2)])
    alone = single.generate([_gen("a red circle", 1)])[0]
    a, b, c = (np.asarray(r.images[0].pil(), dtype=float) for r in (together[1], alone, together[2]))
    assert np.abs(a - b).max() <= 2 and np.abs(a - c).max() > 2


def _perturb(file, key_part):
    from safetensors.torch import load_file, save_file

    tensors = load_file(file)
    name = next(k for k in sorted(tensors) if key_part in k)
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, file, metadata={"format": "pt"})


def test_the_fingerprint_follows_both_halves_weights_and_every_generation_setting(tmp_path, vlm, t2i):
    und, gen = shutil.copytree(vlm, tmp_path / "vlm"), shutil.copytree(t2i, tmp_path / "t2i")
    base = resolve_model(f"{und}+{gen}")
    fp = base.fingerprint()
    assert resolve_model(f"{und}+{gen}").fingerprint() == fp
    settings = [{"num_inference_steps": 3}, {"guidance_scale": 1.5}, {"height": 32}, {"width": 32},
                {"negative_prompt": "blurry"}, {"images_per_call": 2}, {"max_new_tokens": 9},
                {"system_prompt": "Be brief."}, {"dtype": "bfloat16"}]
    fps = {resolve_model(f"{und}+{gen}", s).fingerprint() for s in settings}
    assert len(fps) == len(settings) and fp not in fps
    _perturb(gen / "unet" / "diffusion_pytorch_model.safetensors", "conv_in")
    after_gen = resolve_model(f"{und}+{gen}").fingerprint()
    _perturb(und / "model.safetensors", "lm_head")
    after_und = resolve_model(f"{und}+{gen}").fingerprint()
    assert len({fp, after_gen, after_und}) == 3
    (gen / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({**json.loads((gen / "scheduler" / "scheduler_config.json").read_text()), "steps_offset": 0}))
    assert resolve_model(f"{und}+{gen}").fingerprint() != after_und
    assert base._understander is None and base._pipeline is None


def test_missing_or_broken_halves_are_one_line(tmp_path, vlm, t2i):
    with pytest.raises(WeightsError) as e:
        resolve_model(f"{vlm}+acme/not-cached-t2i")
    assert "hf download acme/not-cached-t2i" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(WeightsError, match="hf download acme/not-cached-vlm"):
        resolve_model("vlm", {"understand": "acme/not-cached-vlm"})
    with pytest.raises(HarnessError, match="needs its halves"):
        resolve_model("composite")
    with pytest.raises(HarnessError, match="has no generate half"):
        resolve_model("vlm", {"understand": str(vlm), "generate": str(t2i)})
    with pytest.raises(HarnessError, match="is a diffusers pipeline, not an understanding model"):
        resolve_model("composite", {"understand": str(t2i)})
    no_unet = shutil.copytree(t2i, tmp_path / "no-unet")
    (no_unet / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"is missing unet/\*\.safetensors"):
        resolve_model(str(no_unet))
    broken = shutil.copytree(t2i, tmp_path / "broken")
    weights = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    model = resolve_model(str(broken))                    # found; fails where it loads, in one line
    with pytest.raises(HarnessError) as e:
        model.generate([_gen("red", 1)])
    assert str(e.value).startswith(f"loading {broken} from {broken} failed: ") and "\n" not in str(e.value)


def test_a_missing_diffusers_names_the_extra_to_install(t2i, monkeypatch):
    model = resolve_model(str(t2i))
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(HarnessError, match=r'pip install -e "\.\[scorers\]"'):
        model.generate([_gen("red", 1)])


def test_unload_then_answer_again(pair):
    first = pair.understand([_ask("what color", _img((220, 40, 40)))])[0].text
    pair.unload()
    assert pair._understander is None and pair._pipeline is None
    assert pair.understand([_ask("what color", _img((220, 40, 40)))])[0].text == first
