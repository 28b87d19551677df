"""DINOv3 image embeddings (the UAE release's fourth UnifiedBench backbone).

facebook/dinov3-vitl16-pretrain-lvd1689m through AutoImageProcessor and AutoModel (transformers' DINOv3ViTModel,
available from transformers 4.56). The embedding is the CLS token, last_hidden_state[:, 0] (the register tokens
follow it). transformers ships DINOv3's image processor for the torchvision backend only, so that backend is used.
The checkpoint is gated on the hub: accept its licence there before `hf download`.
"""
from __future__ import annotations

from harness.errors import HarnessError
from harness.scorers.dinov2 import DINOv2Scorer


class DINOv3Scorer(DINOv2Scorer):
    name = "dinov3"
    default_weights = "facebook/dinov3-vitl16-pretrain-lvd1689m"
    preprocessing = ("checkpoint DINOv3 image processor (resize 224x224, ImageNet mean/std); "
                     "CLS token last_hidden_state[:, 0]")
    default_backend = "torchvision"

    def _load(self) -> None:
        import transformers

        if not hasattr(transformers, "DINOv3ViTModel"):
            raise HarnessError("dinov3 needs transformers >= 4.56 (DINOv3ViTModel); "
                               f"this is {transformers.__version__}")
        super()._load()
