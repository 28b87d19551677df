"""DreamSim perceptual distance (one of the UniGame paper's UnifiedBench backbones), through the dreamsim package.

dreamsim(pretrained=True, dreamsim_type="ensemble") concatenates LoRA-tuned DINO ViT-B/16 CLS, CLIP ViT-B/16 and
OpenCLIP ViT-B/16 embeddings, mean-centres and normalises them; the distance is d = 1 - cos(embed_a, embed_b).
Input: 224x224 bicubic resize, no crop, [0, 1] (the package's own preprocess). The benchmark averages similarities,
so `distance` also reports similarity = 1 - d.

The package downloads its checkpoints on first use into `cache_dir` (its default is ./models, relative to wherever
the process runs; here ~/.cache/dreamsim, or $DREAMSIM_CACHE). Offline, missing files raise one WeightsError
naming them instead of a download attempt.

Kinds:
  distance  two images -> {"distance": d, "similarity": 1 - d}
  embed     one image  -> {"embedding": [...]} (the normalised embedding whose cosine distance is d)
"""
from __future__ import annotations

import contextlib
import io
import os
from importlib import metadata
from pathlib import Path

from harness.errors import WeightsError
from harness.runner import fingerprint_of
from harness.scorers.base import ImageEmbedder
from harness.types import Request, Response

# What dreamsim's download_weights checks, plus what torch.hub needs for the DINO-based models.
_DINO_HUB = ("facebookresearch_dino_main/hubconf.py", "checkpoints/dino_vitbase16_pretrain.pth")
REQUIRED = {
    "ensemble": ("dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar",
                 "ensemble_lora/adapter_config.json") + _DINO_HUB,
    "dino_vitb16": ("dino_vitb16_pretrain.pth", "dino_vitb16_single_lora/adapter_config.json") + _DINO_HUB,
    "open_clip_vitb32": ("open_clip_vitb32_pretrain.pth.tar", "open_clip_vitb32_single_lora/adapter_config.json"),
    "clip_vitb32": ("clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora/adapter_config.json"),
}


def default_cache_dir() -> str:
    if os.environ.get("DREAMSIM_CACHE"):
        return os.environ["DREAMSIM_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dreamsim")


def similarity(distance: float) -> float:
    """DreamSim reports a distance d = 1 - cos; the similarity the benchmark averages is 1 - d."""
    return 1.0 - float(distance)


class DreamSimScorer(ImageEmbedder):
    name = "dreamsim"
    kinds = ("distance", "embed")
    preprocessing = "dreamsim preprocess: resize 224x224 bicubic, no crop, ToTensor [0,1]; normalize_embeds=True"

    def __init__(self, cache_dir: str | None = None, weights: str | None = None, dreamsim_type: str = "ensemble",
                 device: str = "auto", batch_size: int = 16):
        # `weights` is accepted as a synonym so every scorer takes --scorer-args '{"<name>": {"weights": ...}}'
        super().__init__(None, None, device, None, batch_size)
        if dreamsim_type not in REQUIRED:
            raise ValueError(f"dreamsim_type must be one of {', '.join(REQUIRED)}, got {dreamsim_type!r}")
        self.cache_dir = str(Path(cache_dir or weights or default_cache_dir()).expanduser())
        self.weights = self.cache_dir
        self.dreamsim_type = dreamsim_type

    def settings(self) -> dict:
        try:
            version = metadata.version("dreamsim")
        except metadata.PackageNotFoundError:
            version = "not installed"
        return {"dreamsim": version, "dreamsim_type": self.dreamsim_type, "dtype": "float32"}

    def fingerprint(self) -> str:
        # the package pins its checkpoint URLs per version, so version + type identify the weights
        if self._fp is None:
            self._fp = f"{self.name}/v{self.version}/{fingerprint_of(self.preprocessing, self.settings())}"
        return self._fp

    def missing_files(self) -> list[str]:
        return [f for f in REQUIRED[self.dreamsim_type] if not (Path(self.cache_dir) / f).exists()]

    def _load(self) -> None:
        missing = self.missing_files()
        if missing:
            raise WeightsError(
                f"dreamsim ({self.dreamsim_type}) weights missing in {self.cache_dir}: {', '.join(missing)}; on a "
                f"connected machine run `python -c \"from dreamsim import dreamsim; dreamsim(pretrained=True, "
                f"dreamsim_type='{self.dreamsim_type}', cache_dir='dreamsim_cache')\"` and copy dreamsim_cache/ "
                f"to {self.cache_dir} (or pass --scorer-args '{{\"dreamsim\": {{\"cache_dir\": \"/path\"}}}}')")
        try:
            from dreamsim import dreamsim
        except ImportError as e:
            raise WeightsError(f"the dreamsim package is not importable ({e}); pip install dreamsim") from None
        quiet = io.StringIO()  # the package prints progress lines that would break progress bars
        try:
            with contextlib.redirect_stdout(quiet):
                model, preprocess = dreamsim(pretrained=True, device=str(self.device), cache_dir=self.cache_dir,
                                             dreamsim_type=self.dreamsim_type)
        except OSError as e:  # a file the check above does not know about, e.g. a partial torch.hub clone
            raise WeightsError(f"dreamsim could not load from {self.cache_dir} ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]}); re-create the cache as described above") from None
        self._m_model, self._m_preprocess = model, preprocess

    def image_features(self, images: list):
        import torch

        pixels = torch.cat([self._m_preprocess(im) for im in images]).to(self.device)
        emb = self._m_model.embed(pixels)
        return emb.reshape(len(images), -1)

    def distance(self, requests: list[Request]) -> list[Response]:
        import numpy as np

        self.ensure_loaded()
        out: list = [None if len(r.images) == 2 else Response.failure(f"distance needs two images, got {len(r.images)}")
                     for r in requests]
        todo = [i for i, r in enumerate(out) if r is None]
        unique: dict[str, object] = {}
        for i in todo:
            for im in requests[i].images:
                unique.setdefault(im.sha256, im)
        keys = list(unique)
        vecs = dict(zip(keys, self.batched([unique[k].pil() for k in keys], self.image_rows)))
        for i in todo:
            a, b = (np.asarray(vecs[im.sha256], dtype=np.float64) for im in requests[i].images)
            denom = max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8)  # torch's cosine_similarity eps
            d = 1.0 - float(a @ b / denom)
            out[i] = (Response(values={"distance": d, "similarity": similarity(d)}) if np.isfinite(d)
                      else Response.failure("distance is not finite"))
        return out
