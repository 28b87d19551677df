"""DINOv2 image embeddings (UnifiedBench backbone, after the UAE release's Score_i2i.py).

facebook/dinov2-large through AutoImageProcessor (resize short side 256 bicubic, centre-crop 224, ImageNet
mean/std) and AutoModel. The embedding is the CLS token of the final (layer-normed) hidden states,
last_hidden_state[:, 0], as the reference takes it, not pooler_output. The image processor runs on transformers'
PIL backend (the classic processor) by default; which backend the reference environment used is not recorded, and
`image_backend="torchvision"` switches (resampling differs slightly; the choice is part of the fingerprint).
"""
from __future__ import annotations

from harness.scorers.base import ImageEmbedder


class DINOv2Scorer(ImageEmbedder):
    name = "dinov2"
    kinds = ("embed",)
    default_weights = "facebook/dinov2-large"
    preprocessing = ("checkpoint image processor (resize short side 256 bicubic, centre crop 224, ImageNet "
                     "mean/std); CLS token last_hidden_state[:, 0]")
    default_backend = "pil"

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 16, image_backend: str | None = None):
        super().__init__(weights, revision, device, dtype, batch_size)
        self.image_backend = image_backend or self.default_backend

    def settings(self) -> dict:
        return {**super().settings(), "image_backend": self.image_backend}

    def _load(self) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self._m_model = self.from_pretrained(AutoModel, dtype=self.dtype).to(self.device).eval()
        self._m_processor = self.from_pretrained(AutoImageProcessor, backend=self.image_backend)

    def image_features(self, images: list):
        pixels = self._m_processor(images=images, return_tensors="pt")["pixel_values"]
        return self._m_model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state[:, 0]
