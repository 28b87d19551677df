"""CLIP similarities for the semantic filter, through transformers' CLIPModel (any local folder or hub id).

Images arrive as tensors in [-1, 1] straight from the decoder, so preprocessing (bicubic resize to CLIP's input
size, CLIP's mean/std) is done on tensors here instead of round-tripping through PIL. Weights are loaded once,
frozen, in eval mode; missing weights raise the harness's one-line WeightsError naming the files to fetch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.errors import WeightsError
from harness.scorers.weights import missing_weights


def clipscore(cos: torch.Tensor) -> torch.Tensor:
    """CLIPScore (Hessel et al. 2021): 2.5 * max(cos, 0); the scale on which the paper's 0.6 makes sense."""
    return 2.5 * cos.clamp(min=0)


class Clip:
    def __init__(self, weights: str, device: str | torch.device = "cpu"):
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel
        from transformers.utils import logging as hf_logging

        from harness.hub import online
        from harness.scorers.weights import is_local

        hf_logging.disable_progress_bar()
        self.weights = weights
        if not is_local(weights):
            online()            # an unreachable hub: load from the local cache only, without retries
        try:
            self.model = CLIPModel.from_pretrained(weights, use_safetensors=None).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(weights)
            ip = CLIPImageProcessor.from_pretrained(weights)
        except (OSError, ValueError) as e:
            where = str(missing_weights("clip", weights, e, files="a transformers CLIP folder")).split("; ")[0]
            raise WeightsError(f"{where}; the semantic filter needs a transformers CLIP (config.json, weights, "
                               "tokenizer, preprocessor_config.json): pass --clip-weights PATH or a cached hub id, "
                               "or train with --filter cosine or --filter none") from None
        self.model.requires_grad_(False)
        self.size = _edge(ip.crop_size) or _edge(ip.size) or 224
        self.mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
        self.device = torch.device(device)

    @torch.no_grad()
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings of images in [-1, 1] [B, 3, H, W]."""
        x = (pixels.float().to(self.device) + 1) / 2
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True)
        x = (x.clamp(0, 1) - self.mean.to(x.device)) / self.std.to(x.device)
        out = self.model.get_image_features(pixel_values=x)
        return F.normalize(_tensor(out).float(), dim=-1)

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        max_len = min(77, int(getattr(self.model.config.text_config, "max_position_embeddings", 77)))
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        out = self.model.get_text_features(**enc)
        return F.normalize(_tensor(out).float(), dim=-1)

    def text_cosine(self, pixels: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Raw cosine between each image and its text: [B]."""
        return (self.image_features(pixels) * self.text_features(texts)).sum(-1).cpu()

    def image_cosine(self, pixels: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return (self.image_features(pixels) * self.image_features(reference)).sum(-1).cpu()


def _edge(size) -> int | None:
    """Square side of a processor size (a dict in older transformers, a SizeDict in newer, or an int)."""
    if size is None or isinstance(size, int):
        return size
    get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)
    value = get("height") or get("shortest_edge")
    return int(value) if value else None


def _tensor(out) -> torch.Tensor:
    """get_*_features returns a tensor in most transformers versions and a model output in some."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        if getattr(out, name, None) is not None:
            return getattr(out, name)
    raise TypeError(f"unexpected CLIP output {type(out).__name__}")
