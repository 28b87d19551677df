"""The Janus adapter on a random-config Janus saved as a local Hugging Face folder (no download)."""
import pytest

torch = pytest.importorskip("torch")

from PIL import Image as PILImage  # noqa: E402

from harness.models import resolve_model  # noqa: E402
from harness.models.janus import JanusAdapter, parse_size  # noqa: E402
from harness.models.janus_decode import decode_text, generators_for, image_features  # noqa: E402
from tinyfactory.build import save_random_model  # noqa: E402
from harness.types import Image, Request  # noqa: E402

VQA = "\nAnswer the question using a single word or phrase."


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("janus") / "tiny-random"
    save_random_model(path)
    return path


@pytest.fixture(scope="module")
def model(folder):
    return resolve_model(str(folder), {"batch_size": 8})


def _img(rgb, size=(32, 32)):
    im = PILImage.new("RGB", size, (225, 225, 225))
    im.paste(rgb, (4, 4, 20, 20))
    return Image(pil=im)


def _ask(text, *images, **params):
    return Request("model", "understand", text=text, images=tuple(images), params={"max_new_tokens": 6, **params})


def test_local_folder_resolves_to_janus_without_loading(folder):
    m = resolve_model(str(folder))
    assert isinstance(m, JanusAdapter) and m._model is None
    fp = m.fingerprint()
    assert fp == resolve_model(str(folder)).fingerprint() and m._model is None
    info = m.describe()
    assert info["source"]["kind"] == "local" and info["dtype"] == "float32" and info["native_image_size"] == 32
    assert m.default_data is None
    assert resolve_model(str(folder), {"dtype": "bfloat16"}).fingerprint() != fp
    assert resolve_model(str(folder), {"guidance_scale": 2}).fingerprint() != fp


def test_understand_is_batched_and_independent_of_batch_composition(model):
    reqs = [_ask("What color is the circle?" + VQA, _img((220, 40, 40))),
            _ask("How many?", _img((30, 100, 220)), _img((40, 160, 60))),     # two images, short prompt
            _ask("What color is the square? Answer A or B.", _img((40, 160, 60))),
            _ask("yes or no")]                                                  # no image at all
    together = model.understand(reqs)
    alone = [model.understand([r])[0] for r in reqs]
    assert all(r.ok for r in together) and any(r.text for r in together)
    assert [r.text for r in together] == [r.text for r in alone]


def test_left_padding_keeps_answer_tokens(model):
    m, processor = model.load()
    from harness.models.janus_prompts import understanding_prompt

    texts = ["red", "What color is the circle? What color is the square? How many are there?"]
    images = [_img((220, 40, 40)).pil(), _img((30, 100, 220)).pil()]
    enc = processor(text=[understanding_prompt(processor, t, 1) for t in texts], images=images,
                    return_tensors="pt", padding=True)
    assert enc["attention_mask"][0, 0] == 0     # the short prompt really is padded
    eos = processor.tokenizer.eos_token_id
    with torch.no_grad():
        batch = decode_text(m, enc["input_ids"], enc["attention_mask"], image_features(m, enc["pixel_values"]),
                            max_new_tokens=5, temperature=0, generators=generators_for([0, 0], "cpu"), eos_id=-1)
        for i, t in enumerate(texts):
            one = processor(text=[understanding_prompt(processor, t, 1)], images=[images[i]], return_tensors="pt")
            single = decode_text(m, one["input_ids"], one["attention_mask"], image_features(m, one["pixel_values"]),
                                 max_new_tokens=5, temperature=0, generators=generators_for([0], "cpu"), eos_id=-1)
            assert batch[i] == single[0]
    assert eos is not None


def test_sampled_answers_depend_on_seed_not_on_neighbours(model):
    r = _ask("What color is the circle?", _img((220, 40, 40)), do_sample=True, temperature=1.5, max_new_tokens=8)
    a = model.understand([r.replace(seed=7), r.replace(seed=8, text="How many?")])[0]
    b = model.understand([r.replace(seed=7)])[0]
    assert a.text == b.text


def test_generate_one_seeded_image_per_request(model):
    def gen(text, seed, **params):
        return Request("model", "generate", text=text, seed=seed, params={"guidance_scale": 3.0, **params})

    batch = [gen("a red circle", 1), gen("two blue squares and a green triangle", 2), gen("a red circle", 2),
             gen("a red circle", 1)]
    out = model.generate(batch)
    assert all(r.ok and len(r.images) == 1 for r in out)
    h = [r.images[0].sha256 for r in out]
    assert h[0] == h[3] and h[0] != h[2]
    alone = model.generate([gen("a red circle", 1)])[0].images[0].sha256
    other = model.generate([gen("yes", 5), gen("a red circle", 1), gen("A B C D green", 9)])[1].images[0].sha256
    assert alone == h[0] == other
    assert out[0].images[0].pil().size == (32, 32)


def test_generate_resizes_to_the_requested_size_and_reports_failures(model):
    out = model.generate([Request("model", "generate", text="a red circle", seed=1, params={"size": 48}),
                          Request("model", "generate", text="a red circle", seed=1, params={"size": [40, 24]}),
                          Request("model", "generate", text="", seed=1),
                          Request("model", "generate", text=None, seed=1)])
    assert out[0].images[0].pil().size == (48, 48) and out[1].images[0].pil().size == (40, 24)
    assert out[2].ok and not out[3].ok          # an empty caption is a prompt (UnifiedBench); no text is not
    assert parse_size("64x32") == (64, 32) and parse_size(16) == (16, 16) and parse_size(None) is None


def test_guidance_one_skips_the_unconditional_branch(model):
    r = Request("model", "generate", text="a red circle", seed=3, params={"guidance_scale": 1.0,
                                                                            "temperature": 0})
    a, b = model.generate([r, r.replace(seed=4)])
    assert a.images[0].sha256 == b.images[0].sha256     # greedy: the seed does not matter


def test_unload_then_answer_again(folder):
    m = resolve_model(str(folder))
    first = m.understand([_ask("red", _img((220, 40, 40)))])[0].text
    m.unload()
    assert m._model is None
    assert m.understand([_ask("red", _img((220, 40, 40)))])[0].text == first


def test_the_engine_runs_tasks_on_janus_and_resumes_without_loading(folder, tmp_path, doubles):
    """Executor -> adapter -> cache, then a rerun answered entirely from the cache (weights never loaded)."""
    from harness.api import RunConfig, evaluate

    config = RunConfig(output=tmp_path / "out", limit=4, batch_size=3, progress=False)
    first = evaluate(resolve_model(str(folder)), ["double_sum", "double_roundtrip"], config)
    assert first.results["double_roundtrip"].to_dict()["counts"]["failed"] == 0
    again_model = resolve_model(str(folder))
    again = evaluate(again_model, ["double_sum", "double_roundtrip"], config)
    assert again_model._model is None
    assert again.results["double_sum"].to_dict()["metrics"] == first.results["double_sum"].to_dict()["metrics"]


def test_prompt_layout_is_janus_with_or_without_a_chat_template(model):
    from harness.models.janus_prompts import generation_prompt, understanding_prompt

    _, processor = model.load()
    want = "<|User|>: <image_placeholder>\n<image_placeholder>\nWhat color?\n\n<|Assistant|>:"
    assert understanding_prompt(processor, "What color?", 2) == want
    assert generation_prompt(processor, "a red circle") == "<|User|>: a red circle\n\n<|Assistant|>:"

    class Bare:
        chat_template = None

    assert understanding_prompt(Bare(), "What color?", 2) == want
