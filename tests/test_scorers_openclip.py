"""open_clip-backed scorers (clip_openclip, longclip) on a tiny open_clip architecture registered for the test;
weights are saved to a temporary file and loaded by path. No network, no real weights."""
import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from torchvision import transforms as T

from harness.errors import WeightsError
from harness.scorers import make_scorer
from harness.scorers.longclip import LongCLIPScorer
from harness.scorers.openclip import _KNOWN_TAGS, OpenCLIPScorer
from harness.task import score

torch.set_num_threads(1)
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
ARCH = "harness-test-tiny-clip"


def image(seed, size=(44, 36)):
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def reference_pixels(images, size=32):
    """The OpenAI CLIP eval transform, written out: resize short side (bicubic), centre crop, mean/std."""
    t = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor(),
                   T.Normalize(MEAN, STD)])
    return torch.stack([t(im.convert("RGB")) for im in images])


def embeds(scorer, kind, reqs):
    out = scorer.run(kind, reqs)
    assert all(r.ok for r in out), [r.error for r in out]
    return np.array([r.values["embedding"] for r in out])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import open_clip

    d = tmp_path_factory.mktemp("openclip")
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
    (d / f"{ARCH}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(d / f"{ARCH}.json"))
    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained=None, force_quick_gelu=True).eval()
    torch.save(model.state_dict(), d / "tiny.pt")
    return model, d / "tiny.pt"


def test_openai_tag_needs_quick_gelu_and_the_shortcut_table_matches_open_clip():
    import open_clip

    for (arch, tag), cfg in _KNOWN_TAGS.items():
        real = open_clip.get_pretrained_cfg(arch, tag)
        assert {k: real[k] for k in cfg} == cfg and cfg["quick_gelu"] is True
    assert OpenCLIPScorer()._quick_gelu() is True and OpenCLIPScorer(quick_gelu=False)._quick_gelu() is False
    assert OpenCLIPScorer().fingerprint() != OpenCLIPScorer(quick_gelu=False).fingerprint()


def test_clip_openclip_embed_text_and_classify(tiny):
    import open_clip

    model, path = tiny
    scorer = make_scorer("clip_openclip", {"arch": ARCH, "pretrained": None, "weights": str(path),
                                           "quick_gelu": True, "device": "cpu", "batch_size": 2})
    imgs = [image(i) for i in range(3)]
    reqs = [score("clip_openclip", "embed", images=[im]) for im in imgs]
    got = embeds(scorer, "embed", reqs)
    assert got.shape == (3, 16) and np.isfinite(got).all()
    np.testing.assert_allclose(got, np.concatenate([embeds(scorer, "embed", [r]) for r in reqs]), rtol=1e-5,
                               atol=1e-6)
    with torch.no_grad():
        ref = model.encode_image(reference_pixels(imgs)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)

    tok = open_clip.get_tokenizer(ARCH)
    texts = ["a photo of a red dog", "a blue object"]
    with torch.no_grad():
        ref_text = model.encode_text(tok(texts))
    np.testing.assert_allclose(embeds(scorer, "embed_text", [score("clip_openclip", "embed_text", text=t)
                                                             for t in texts]), ref_text.numpy(), rtol=1e-5, atol=1e-6)

    colours, templates = ["red", "blue", "green"], ["a photo of a {c} dog", "a photo of a {c}-colored dog"]
    [resp] = scorer.run("classify", [score("clip_openclip", "classify", images=[imgs[0]], classnames=colours,
                                           templates=templates)])
    with torch.no_grad():
        weights = []
        for c in colours:
            e = torch.nn.functional.normalize(model.encode_text(tok([t.format(c=c) for t in templates])), dim=-1)
            e = e.mean(0)
            weights.append(e / e.norm())
        logits = 100 * torch.nn.functional.normalize(torch.tensor(ref[:1]), dim=-1) @ torch.stack(weights, 1)
    assert resp.values["label"] == colours[int(logits.argmax())]
    assert [resp.values["scores"][c] for c in colours] == pytest.approx(logits[0].tolist(), abs=1e-3)


def test_clip_openclip_gelu_setting_changes_the_embedding(tiny):
    _, path = tiny
    req = [score("clip_openclip", "embed", images=[image(5)])]
    quick = embeds(OpenCLIPScorer(ARCH, None, str(path), device="cpu", quick_gelu=True), "embed", req)
    plain = embeds(OpenCLIPScorer(ARCH, None, str(path), device="cpu", quick_gelu=False), "embed", req)
    assert not np.allclose(quick, plain, atol=1e-4)


def test_clip_openclip_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="not found at") as err:
        OpenCLIPScorer(ARCH, None, str(tmp_path / "absent.pt"), device="cpu").ensure_loaded()
    assert "\n" not in str(err.value)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        make_scorer("clip_openclip", {"device": "cpu"}).ensure_loaded()
    msg = str(err.value)
    assert "\n" not in msg and "hf download timm/vit_large_patch14_clip_224.openai" in msg


def test_clip_openclip_tag_loads_offline_from_the_cached_snapshot(tiny, tmp_path, monkeypatch):
    """A tag whose files sit in the HF cache loads with the hub unreachable, with the tag's preprocessing."""
    import shutil

    from harness.scorers import openclip

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "models--tiny-org--tiny-openclip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    shutil.copy(tiny[1], repo / "snapshots" / commit / "open_clip_pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = {"hf_hub": "tiny-org/tiny-openclip/", "quick_gelu": True, "interpolation": "bicubic",
           "resize_mode": "shortest", "mean": MEAN, "std": STD}
    monkeypatch.setitem(openclip._KNOWN_TAGS, (ARCH, "tiny-tag"), cfg)
    scorer = OpenCLIPScorer(ARCH, "tiny-tag", device="cpu")
    assert commit in scorer.fingerprint()
    req = [score("clip_openclip", "embed", images=[image(9)])]
    with torch.no_grad():
        ref = tiny[0].encode_image(reference_pixels([image(9)])).numpy()
    np.testing.assert_allclose(embeds(scorer, "embed", req), ref, rtol=1e-5, atol=1e-6)


def _longclip_checkpoint(folder, model):
    """A LongCLIP-format state dict: OpenAI CLIP keys, text positions stretched to 248, plus the three extras."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["positional_embedding"] = torch.randn(248, 64).half().float()
    state["positional_embedding_res"] = torch.randn(248, 64)
    state["mask1"], state["mask2"] = torch.zeros(248, 1), torch.ones(248, 1)
    torch.save(state, folder / "longclip-L.pt")


def test_longclip_loads_the_image_tower_from_a_longclip_checkpoint(tiny, tmp_path):
    import open_clip

    model = open_clip.create_model(ARCH, pretrained=None, force_quick_gelu=True).eval()
    model.load_state_dict(tiny[0].state_dict())
    with torch.no_grad():
        for p in model.parameters():  # fp16-representable, as LongCLIP's loader stores weights in fp16 first
            p.copy_(p.half().float())
    _longclip_checkpoint(tmp_path, model)
    scorer = LongCLIPScorer(weights=str(tmp_path), device="cpu", batch_size=2)
    imgs = [image(i, (40, 52)) for i in range(3)]
    got = embeds(scorer, "embed", [score("longclip", "embed", images=[im]) for im in imgs])
    with torch.no_grad():
        ref = model.encode_image(reference_pixels(imgs)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert scorer.fingerprint().startswith("longclip/v1/local:")


def test_longclip_missing_checkpoint_names_the_file(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="longclip-L.pt") as err:
        LongCLIPScorer(weights=str(tmp_path), device="cpu").ensure_loaded()
    assert "\n" not in str(err.value)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="hf download BeichenZhang/LongCLIP-L"):
        make_scorer("longclip", {"device": "cpu"}).ensure_loaded()
