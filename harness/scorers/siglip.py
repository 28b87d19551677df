"""SigLIP image embeddings through transformers (one of the UniGame paper's UnifiedBench backbones).

The paper does not say which SigLIP checkpoint it used; the default here is google/siglip-so400m-patch14-384 and
results record it (fingerprint and describe()). Preprocessing is the checkpoint's SiglipImageProcessor (resize to
384x384 bicubic, no crop, mean/std 0.5), PIL backend; the embedding is get_image_features (attention-pool head).
"""
from __future__ import annotations

from harness.scorers.base import ImageEmbedder, features


class SigLIPScorer(ImageEmbedder):
    name = "siglip"
    kinds = ("embed",)
    default_weights = "google/siglip-so400m-patch14-384"
    preprocessing = ("checkpoint SiglipImageProcessor (resize to the model's square size bicubic, no crop, "
                     "mean/std 0.5); get_image_features (attention-pooling head output)")

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 16, image_backend: str = "pil"):
        super().__init__(weights, revision, device, dtype, batch_size)
        self.image_backend = image_backend

    def settings(self) -> dict:
        return {**super().settings(), "image_backend": self.image_backend}

    def _load(self) -> None:
        from transformers import AutoImageProcessor, AutoModel

        model = self.from_pretrained(AutoModel, dtype=self.dtype)
        if not hasattr(model, "get_image_features"):
            raise TypeError(f"{self.weights} is a {type(model).__name__}, which has no get_image_features")
        self._m_model = model.to(self.device).eval()
        self._m_processor = self.from_pretrained(AutoImageProcessor, backend=self.image_backend)

    def image_features(self, images: list):
        pixels = self._m_processor(images=images, return_tensors="pt")["pixel_values"]
        return features(self._m_model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))
