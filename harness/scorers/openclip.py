"""CLIP through open_clip: GenEval's colour classifier (open_clip ViT-L-14, pretrained="openai").

GenEval's evaluate_images.py builds the model with open_clip.create_model_and_transforms(...) and classifies with
clip_benchmark (amp=True, i.e. fp16 autocast on a GPU). Two details matter for matching it with open_clip 3.x:
* OpenAI weights need QuickGELU. open_clip 2.x built "openai" models from the OpenAI state dict with QuickGELU;
  3.x only warns about the mismatch and runs plain GELU, which changes every embedding. `quick_gelu=None` therefore
  takes the setting from the pretrained tag's config (True for "openai").
* `autocast=None` autocasts on CUDA only, like clip_benchmark's default.
Preprocessing is open_clip's eval transform for the tag (OpenAI: resize short side 224 bicubic, centre crop,
CLIP mean/std). Kinds and params as the transformers backend (harness/scorers/clip.py, zeroshot.py).

Weights: the tag's files from the Hugging Face cache (timm/vit_large_patch14_clip_224.openai for the default), or a
local checkpoint file passed as `weights`.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

from harness.errors import WeightsError
from harness.scorers import weights as W
from harness.scorers.base import ImageEmbedder
from harness.scorers.zeroshot import ZeroShotMixin

_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
# open_clip's own table for the default tag, so fingerprinting a cached run need not import open_clip and torch
_KNOWN_TAGS = {("ViT-L-14", "openai"): {
    "hf_hub": "timm/vit_large_patch14_clip_224.openai/", "quick_gelu": True, "interpolation": "bicubic",
    "mean": (0.48145466, 0.4578275, 0.40821073), "std": (0.26862954, 0.26130258, 0.27577711),
    "resize_mode": "shortest"}}


class OpenCLIPScorer(ZeroShotMixin, ImageEmbedder):
    name = "clip_openclip"
    kinds = ("embed", "embed_text", "classify")
    preprocessing = "open_clip eval transform of the pretrained tag; encode_image / encode_text"

    def __init__(self, arch: str = "ViT-L-14", pretrained: str | None = "openai", weights: str | None = None,
                 device: str = "auto", dtype: str | None = None, batch_size: int = 16,
                 autocast: bool | None = None, quick_gelu: bool | None = None):
        super().__init__(weights or "", None, device, dtype, batch_size)
        self.weights = weights
        self.arch, self.pretrained = arch, pretrained
        self.autocast, self.quick_gelu = autocast, quick_gelu

    def _tag_cfg(self) -> dict:
        if not self.pretrained:
            return {}
        if (self.arch, self.pretrained) in _KNOWN_TAGS:
            return _KNOWN_TAGS[(self.arch, self.pretrained)]
        import open_clip

        return open_clip.get_pretrained_cfg(self.arch, self.pretrained) or {}

    def _quick_gelu(self) -> bool:
        return bool(self._tag_cfg().get("quick_gelu", False)) if self.quick_gelu is None else bool(self.quick_gelu)

    def settings(self) -> dict:
        return {**super().settings(), "arch": self.arch, "pretrained": self.pretrained,
                "quick_gelu": self._quick_gelu(), "autocast": "cuda" if self.autocast is None else self.autocast}

    def _hub_repo(self) -> tuple[str, str | None]:
        """(repo id, file name or None for open_clip's default names) of the tag's weights on the hub."""
        parts = self._tag_cfg().get("hf_hub", "").split("/")   # "org/name/" or "org/name/file"
        repo = "/".join(parts[:2]) if len(parts) >= 2 else ""
        filename = parts[2] if len(parts) > 2 and parts[2] else None
        return repo, filename

    def weights_identity(self) -> str:
        if self.weights:
            return W.local_identity(self.weights) if Path(self.weights).expanduser().exists() \
                else f"missing:{self.weights}"
        repo, _ = self._hub_repo()
        if repo:
            self._commit, self._hub_reachable = W.resolve_commit(repo)
        return f"open_clip:{self.arch}:{self.pretrained}@{self._commit or 'unresolved'}"

    def _missing_tag_weights(self) -> WeightsError:
        repo, _ = self._hub_repo()
        return WeightsError(
            f"{self.name}: open_clip weights for {self.arch} pretrained={self.pretrained!r} are not in the local "
            f"Hugging Face cache ({W.hub_cache()}); on a connected machine run `hf download {repo}` "
            f"and copy the cache here, or pass a checkpoint file with --scorer-args "
            f"'{{\"{self.name}\": {{\"weights\": \"/path/open_clip_model.safetensors\"}}}}'")

    def _source(self) -> str:
        """A checkpoint file, or the tag for open_clip to fetch. Offline, the tag's file is taken from the cached
        snapshot directly: open_clip's own lookup would retry the unreachable hub for a minute first."""
        if self.weights:
            path = Path(self.weights).expanduser()
            if not path.is_file():
                raise W.missing_weights(self.name, self.weights, files="an open_clip checkpoint file")
            return str(path)
        repo, filename = self._hub_repo()
        self.fingerprint()
        if not repo or not (W.offline() or not self._hub_reachable):
            return self.pretrained
        snap = W.snapshot_dir(repo, self._commit)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        found = [snap / n for n in names if snap is not None and (snap / n).is_file()]
        if not found:
            raise self._missing_tag_weights()
        return str(found[0])

    def _load(self) -> None:
        import open_clip

        source = self._source()
        cfg = self._tag_cfg()
        # loading a file skips the tag's preprocessing settings: pass them on
        preprocess = {k: cfg[c] for k, c in (("image_mean", "mean"), ("image_std", "std"),
                                             ("image_interpolation", "interpolation"),
                                             ("image_resize_mode", "resize_mode")) if c in cfg}
        # open_clip logs a failed download at ERROR before raising; the WeightsError below explains it instead
        previous = logging.root.manager.disable
        logging.disable(max(previous, logging.ERROR))
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                self.arch, pretrained=source, device=self.device,
                precision=_PRECISION[str(self.dtype).replace("torch.", "")], force_quick_gelu=self._quick_gelu(),
                **preprocess)
        except RuntimeError as e:
            if "Failed to download" not in str(e):
                raise
            raise self._missing_tag_weights() from None
        finally:
            logging.disable(previous)
        self._m_model = model.eval()
        self._m_preprocess = transform
        self._m_tokenizer = open_clip.get_tokenizer(self.arch)

    def _autocast(self):
        import torch

        on = self.device.type == "cuda" if self.autocast is None else self.autocast
        return torch.autocast(self.device.type) if on else nullcontext()

    def image_features(self, images: list):
        import torch

        pixels = torch.stack([self._m_preprocess(im) for im in images]).to(self.device, self.dtype)
        with self._autocast():
            return self._m_model.encode_image(pixels)

    def text_features(self, texts: list[str]):
        with self._autocast():
            return self._m_model.encode_text(self._m_tokenizer(texts).to(self.device))
