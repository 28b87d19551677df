"""Embedding scorers (clip, siglip, dinov2, dinov3) on tiny random-config models saved to a temporary folder and
loaded by local path or through a fake offline Hugging Face cache; no network, no real weights."""
import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from harness.errors import WeightsError
from harness.scorers import make_scorer
from harness.scorers.clip import CLIPScorer
from harness.scorers.dinov2 import DINOv2Scorer
from harness.scorers.dinov3 import DINOv3Scorer
from harness.scorers.siglip import SigLIPScorer
from harness.task import score

torch.set_num_threads(1)


def image(seed, size=(40, 36)):
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def cos(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def embeds(scorer, kind, reqs):
    out = scorer.run(kind, reqs)
    assert all(r.ok for r in out), [r.error for r in out]
    return np.array([r.values["embedding"] for r in out])


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    d = tmp_path_factory.mktemp("clip")
    letters = [chr(c) for c in range(97, 123)]
    vocab = {c: i for i, c in enumerate(letters + [c + "</w>" for c in letters] + ["<|startoftext|>", "<|endoftext|>"])}
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    special = dict(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                   pad_token_id=vocab["<|endoftext|>"])
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, **special),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).eval().save_pretrained(d)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_clip_embed_matches_manual_forward_and_batching(clip_dir):
    from transformers import AutoImageProcessor, CLIPModel

    scorer = CLIPScorer(weights=str(clip_dir), device="cpu", batch_size=2)
    assert not scorer._loaded
    imgs = [image(i) for i in range(3)]
    reqs = [score("clip", "embed", images=[im]) for im in imgs + [imgs[0]]]
    together = embeds(scorer, "embed", reqs)
    assert together.shape == (4, 16) and np.isfinite(together).all()
    assert cos(together[0], together[3]) == pytest.approx(1.0, abs=1e-6)
    singly = np.concatenate([embeds(scorer, "embed", [r]) for r in reqs])
    np.testing.assert_allclose(together, singly, rtol=1e-5, atol=1e-6)
    model = CLIPModel.from_pretrained(clip_dir).eval()
    proc = AutoImageProcessor.from_pretrained(clip_dir, backend="pil")
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=proc(images=imgs, return_tensors="pt")["pixel_values"])
    ref = getattr(ref, "pooler_output", ref).numpy()
    np.testing.assert_allclose(together[:3], ref, rtol=1e-5, atol=1e-6)
    assert scorer.describe()["device"] == "cpu"
    scorer.unload()
    assert not scorer._loaded and scorer._m_model is None
    np.testing.assert_allclose(embeds(scorer, "embed", reqs[:1]), together[:1], rtol=1e-6)  # reloads lazily


def test_clip_text_embeddings_and_zero_shot_match_clip_benchmark(clip_dir):
    from transformers import AutoTokenizer, CLIPModel

    scorer = make_scorer("clip", {"weights": str(clip_dir), "device": "cpu", "batch_size": 2})
    texts = ["a photo of a cat", "dog", "a red car"]
    got = embeds(scorer, "embed_text", [score("clip", "embed_text", text=t) for t in texts])
    model = CLIPModel.from_pretrained(clip_dir).eval()
    tok = AutoTokenizer.from_pretrained(clip_dir)

    def text_feats(batch):
        with torch.no_grad():
            out = model.get_text_features(**tok(batch, padding=True, return_tensors="pt"))
        return getattr(out, "pooler_output", out)
    np.testing.assert_allclose(got, text_feats(texts).numpy(), rtol=1e-5, atol=1e-6)

    # clip_benchmark zero_shot_classifier: normalise each prompt, average, renormalise; logits = 100 * cos
    names, templates = ["red", "green", "blue"], ["a photo of a {c} car", "a {c} object"]
    img = image(7)
    [resp] = scorer.run("classify", [score("clip", "classify", images=[img], classnames=names, templates=templates)])
    weights = []
    for n in names:
        e = torch.nn.functional.normalize(text_feats([t.format(c=n) for t in templates]), dim=-1).mean(0)
        weights.append(e / e.norm())
    feat = torch.tensor(embeds(scorer, "embed", [score("clip", "embed", images=[img])])[0], dtype=torch.float32)
    logits = 100 * torch.nn.functional.normalize(feat, dim=-1) @ torch.stack(weights, 1)
    assert resp.values["label"] == names[int(logits.argmax())]
    assert [resp.values["scores"][n] for n in names] == pytest.approx(logits.tolist(), abs=1e-3)
    json.dumps(resp.values)
    # the dict form of the prompts gives the same answer
    prompts = {n: [t.format(c=n) for t in templates] for n in names}
    [same] = scorer.run("classify", [score("clip", "classify", images=[img], prompts=prompts)])
    assert same.values == resp.values
    bad = scorer.run("classify", [score("clip", "classify", images=[img], classnames=names, templates=["{x}"]),
                                  score("clip", "classify", images=[img]), score("clip", "classify", classnames=names)])
    assert [r.ok for r in bad] == [False, False, False] and "placeholder" in bad[0].error


class _Steered(CLIPScorer):
    """Text features that point at a chosen image's embedding for prompts mentioning 'target'."""

    target = None

    def text_features(self, texts):
        gen = torch.Generator().manual_seed(len(texts))
        out = torch.randn(len(texts), 16, generator=gen)
        for i, t in enumerate(texts):
            if "target" in t:
                out[i] = self.target * (1 + i)  # scale must not matter: prompts are normalised
        return out


def test_classify_picks_the_constructed_right_label(clip_dir):
    scorer = _Steered(weights=str(clip_dir), device="cpu")
    img = image(3)
    vec = embeds(scorer, "embed", [score("clip", "embed", images=[img])])[0]
    scorer.target = torch.tensor(vec, dtype=torch.float32)
    prompts = {"wrong-a": ["x one", "x two"], "right": ["target one", "target two"], "wrong-b": ["y", "z"]}
    [resp] = scorer.run("classify", [score("clip", "classify", images=[img], prompts=prompts)])
    assert resp.values["label"] == "right"
    assert resp.values["scores"]["right"] == pytest.approx(100.0, abs=1e-3)


def test_siglip_embed(tmp_path):
    from transformers import AutoImageProcessor, SiglipConfig, SiglipImageProcessor, SiglipModel

    cfg = SiglipConfig(text_config=dict(vocab_size=50, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16, bos_token_id=1,
                                        eos_token_id=2, pad_token_id=0),
                       vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                                          num_hidden_layers=1, num_attention_heads=2))
    torch.manual_seed(1)
    model = SiglipModel(cfg).eval()
    model.save_pretrained(tmp_path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    proc = AutoImageProcessor.from_pretrained(tmp_path, backend="pil")  # the scorer's default backend
    scorer = SigLIPScorer(weights=str(tmp_path), device="cpu", batch_size=2)
    imgs = [image(i, (50, 30)) for i in range(3)]
    got = embeds(scorer, "embed", [score("siglip", "embed", images=[im]) for im in imgs])
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=proc(images=imgs, return_tensors="pt")["pixel_values"])
    np.testing.assert_allclose(got, getattr(ref, "pooler_output", ref).numpy(), rtol=1e-5, atol=1e-6)
    assert got.shape == (3, 32)


def _check_cls_scorer(scorer_cls, model, proc, folder):
    scorer = scorer_cls(weights=str(folder), device="cpu", batch_size=2)
    imgs = [image(i, (48, 40)) for i in range(3)]
    reqs = [score(scorer.name, "embed", images=[im]) for im in imgs]
    together = embeds(scorer, "embed", reqs)
    singly = np.concatenate([embeds(scorer, "embed", [r]) for r in reqs])
    np.testing.assert_allclose(together, singly, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        hidden = model(pixel_values=proc(images=imgs, return_tensors="pt")["pixel_values"]).last_hidden_state
    np.testing.assert_allclose(together, hidden[:, 0].numpy(), rtol=1e-5, atol=1e-6)  # the CLS token
    assert not np.allclose(together, hidden[:, 1:].mean(1).numpy(), atol=1e-3)      # not a pooled mean


def test_dinov2_uses_the_cls_token(tmp_path):
    from transformers import AutoImageProcessor, Dinov2Config, Dinov2Model
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil

    torch.manual_seed(2)
    model = Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=1, num_attention_heads=2)).eval()
    model.save_pretrained(tmp_path)
    BitImageProcessorPil(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(tmp_path)
    _check_cls_scorer(DINOv2Scorer, model, AutoImageProcessor.from_pretrained(tmp_path, backend="pil"), tmp_path)


def test_dinov3_uses_the_cls_token(tmp_path):
    from transformers import AutoImageProcessor, DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel

    torch.manual_seed(3)
    model = DINOv3ViTModel(DINOv3ViTConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=2,
                                           num_register_tokens=2)).eval()
    model.save_pretrained(tmp_path)
    DINOv3ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    _check_cls_scorer(DINOv3Scorer, model, AutoImageProcessor.from_pretrained(tmp_path), tmp_path)


def test_fingerprint_is_cheap_and_records_weights_and_preprocessing(clip_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = CLIPScorer(weights=str(clip_dir))
    fp = a.fingerprint()
    assert fp.startswith("clip/v1/local:") and not a._loaded
    assert CLIPScorer(weights=str(clip_dir)).fingerprint() == fp
    assert CLIPScorer(weights=str(clip_dir), image_backend="torchvision").fingerprint() != fp
    assert DINOv2Scorer(weights=str(clip_dir)).fingerprint() != fp
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    hub = make_scorer("clip")
    assert hub.fingerprint().startswith("clip/v1/openai/clip-vit-large-patch14@unresolved/")
    d = hub.describe()
    assert d["weights"] == "openai/clip-vit-large-patch14" and "preprocessing" in d and not hub._loaded


def test_hub_id_loads_offline_from_the_local_cache_and_records_the_commit(clip_dir, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in clip_dir.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = CLIPScorer(weights="tiny-org/tiny-clip", device="cpu")
    assert f"tiny-org/tiny-clip@{commit}" in scorer.fingerprint()
    local = CLIPScorer(weights=str(clip_dir), device="cpu")
    req = [score("clip", "embed", images=[image(1)])]
    np.testing.assert_allclose(embeds(scorer, "embed", req), embeds(local, "embed", req), rtol=1e-6)
    assert scorer.describe()["snapshot"] == commit


@pytest.mark.parametrize("name", ["clip", "siglip", "dinov2", "dinov3", "detector", "judge_local"])
def test_missing_hub_weights_give_one_line_naming_the_id(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = make_scorer(name, {"device": "cpu"})
    with pytest.raises(WeightsError) as err:
        scorer.ensure_loaded()
    msg = str(err.value)
    assert "\n" not in msg and scorer.default_weights in msg
    assert f"hf download {scorer.default_weights}" in msg and '"weights": "/path"' in msg


def test_missing_local_folder_names_the_path(tmp_path):
    scorer = make_scorer("dinov2", {"weights": str(tmp_path / "nowhere"), "device": "cpu"})
    with pytest.raises(WeightsError, match="nowhere") as err:
        scorer.run("embed", [score("dinov2", "embed", images=[image(0)])])
    assert "\n" not in str(err.value)


def test_embed_needs_exactly_one_image(clip_dir):
    scorer = CLIPScorer(weights=str(clip_dir), device="cpu")
    out = scorer.run("embed", [score("clip", "embed", images=[image(0), image(1)]),
                               score("clip", "embed", images=[image(0)])])
    assert not out[0].ok and "exactly one image" in out[0].error and out[1].ok
