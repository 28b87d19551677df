"""DreamSim scorer. Its ensemble (three ViT-B/16 towers plus LoRA weights from GitHub releases and a torch.hub
clone of DINO) cannot be built offline, so the package model is replaced by a stand-in with the same `embed`
interface; what is tested is the scorer's own part: distance/similarity conversion on known vectors, batching and
deduplication, request checks and the missing-weights message."""
import pytest
import torch
from PIL import Image as PILImage
from torchvision import transforms as T

from harness.errors import WeightsError
from harness.scorers import make_scorer
from harness.scorers.dreamsim import REQUIRED, DreamSimScorer, similarity
from harness.task import score

torch.set_num_threads(1)


class MeanColour(torch.nn.Module):
    """Stand-in for dreamsim's PerceptualModel: the embedding is the image's mean RGB."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def embed(self, pixels):
        self.calls.append(len(pixels))
        return pixels.mean(dim=(2, 3))


class StandIn(DreamSimScorer):
    def _load(self):
        resize = T.Compose([T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor()])
        self._m_model = MeanColour()
        self._m_preprocess = lambda im: resize(im.convert("RGB")).unsqueeze(0)


def solid(rgb):
    return PILImage.new("RGB", (16, 12), rgb)


def test_similarity_is_one_minus_distance():
    assert similarity(0.3) == pytest.approx(0.7) and similarity(0.0) == 1.0 and similarity(1.25) == -0.25


def test_distance_on_known_vectors_and_batching(tmp_path):
    scorer = StandIn(cache_dir=str(tmp_path), device="cpu", batch_size=2)
    a, b, c = solid((255, 0, 0)), solid((153, 204, 0)), solid((0, 0, 255))   # (1,0,0), (0.6,0.8,0), (0,0,1)
    reqs = [score("dreamsim", "distance", images=[a, b]), score("dreamsim", "distance", images=[a, a]),
            score("dreamsim", "distance", images=[a, c]), score("dreamsim", "distance", images=[b, c])]
    out = scorer.run("distance", reqs)
    assert [r.values["distance"] for r in out] == pytest.approx([0.4, 0.0, 1.0, 1.0], abs=1e-6)
    assert all(r.values["similarity"] == pytest.approx(1 - r.values["distance"]) for r in out)
    assert scorer._m_model.calls == [2, 1]     # three distinct images, embedded once each, in batches of 2
    singly = [scorer.run("distance", [r])[0].values["distance"] for r in reqs]
    assert singly == pytest.approx([r.values["distance"] for r in out], abs=1e-7)
    [emb] = scorer.run("embed", [score("dreamsim", "embed", images=[b])])
    assert emb.values["embedding"] == pytest.approx([0.6, 0.8, 0.0], abs=1e-6)
    bad = scorer.run("distance", [score("dreamsim", "distance", images=[a])])
    assert not bad[0].ok and "two images" in bad[0].error


def test_missing_weights_name_the_files_in_one_line(tmp_path):
    scorer = make_scorer("dreamsim", {"weights": str(tmp_path / "ds"), "device": "cpu"})
    assert scorer.cache_dir == str(tmp_path / "ds")
    with pytest.raises(WeightsError) as err:
        scorer.run("distance", [score("dreamsim", "distance", images=[solid((0, 0, 0)), solid((1, 1, 1))])])
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "ds") in msg
    assert all(f in msg for f in REQUIRED["ensemble"]) and "dreamsim(pretrained=True" in msg
    (tmp_path / "ds").mkdir()
    for f in REQUIRED["ensemble"][:3]:
        (tmp_path / "ds" / f).write_bytes(b"")
    with pytest.raises(WeightsError) as err:
        scorer.ensure_loaded()
    assert REQUIRED["ensemble"][0] not in str(err.value) and "ensemble_lora/adapter_config.json" in str(err.value)


def test_fingerprint_records_package_version_and_type_not_the_folder(tmp_path):
    a = DreamSimScorer(cache_dir=str(tmp_path / "a"))
    assert a.fingerprint() == DreamSimScorer(cache_dir=str(tmp_path / "b")).fingerprint()
    assert a.fingerprint() != DreamSimScorer(dreamsim_type="dino_vitb16").fingerprint()
    assert a.describe()["dreamsim_type"] == "ensemble" and not a._loaded
    with pytest.raises(ValueError, match="dreamsim_type"):
        DreamSimScorer(dreamsim_type="nonsense")
