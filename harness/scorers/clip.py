"""CLIP through transformers (UnifiedBench's CLIP backbone, after the UAE release's Score_i2i.py).

Default weights openai/clip-vit-large-patch14. Preprocessing is the checkpoint's CLIPImageProcessor: resize the
short side to 224 (bicubic), centre-crop 224, CLIP mean/std, on transformers' PIL backend (the classic processor)
by default; transformers 5 would otherwise pick its torchvision backend, whose resampling differs slightly. Which
one the reference environment ran is not recorded; `image_backend` switches, and is part of the fingerprint.

Kinds (values are raw, unnormalised features; callers normalise for cosines):
  embed       one image                  -> {"embedding": [...]}   get_image_features (projected pooled output)
  embed_text  request.text               -> {"embedding": [...]}   get_text_features
  classify    one image + params prompts -> {"label", "scores"}    see harness/scorers/zeroshot.py
"""
from __future__ import annotations

from harness.scorers.base import ImageEmbedder, features
from harness.scorers.zeroshot import ZeroShotMixin


class CLIPScorer(ZeroShotMixin, ImageEmbedder):
    name = "clip"
    kinds = ("embed", "embed_text", "classify")
    default_weights = "openai/clip-vit-large-patch14"
    preprocessing = ("checkpoint CLIPImageProcessor (resize short side 224 bicubic, centre crop 224, CLIP mean/std); "
                     "image: get_image_features (projected pooled output); text: get_text_features, truncated to "
                     "the tokenizer's max length")

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 16, image_backend: str = "pil"):
        super().__init__(weights, revision, device, dtype, batch_size)
        self.image_backend = image_backend

    def settings(self) -> dict:
        return {**super().settings(), "image_backend": self.image_backend}

    def _load(self) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        model = self.from_pretrained(AutoModel, dtype=self.dtype)
        if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
            raise TypeError(f"{self.weights} is a {type(model).__name__}, not a CLIP-style model")
        self._m_model = model.to(self.device).eval()
        self._m_processor = self.from_pretrained(AutoImageProcessor, backend=self.image_backend)
        self._m_tokenizer = self.from_pretrained(AutoTokenizer)

    def image_features(self, images: list):
        pixels = self._m_processor(images=images, return_tensors="pt")["pixel_values"]
        return features(self._m_model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))

    def text_features(self, texts: list[str]):
        tok = self._m_tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        return features(self._m_model.get_text_features(input_ids=tok["input_ids"],
                                                        attention_mask=tok.get("attention_mask")))
