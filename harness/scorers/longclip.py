"""LongCLIP-L image embeddings (the UAE release's UnifiedBench backbone), without the longclip package.

No installable package provides LongCLIP, but its image tower is OpenAI CLIP ViT-L/14 unchanged: LongCLIP only
stretches the *text* positional embedding to 248 tokens (adding positional_embedding_res, mask1, mask2). So
`longclip-L.pt` (a plain OpenAI-format state dict, BeichenZhang/LongCLIP-L on the hub) loads into open_clip's
OpenAI-format builder once those three text-only entries are set aside, and encode_image is LongCLIP's. Text
embeddings are not offered: they need LongCLIP's modified positional scheme.

Mirrors longclip.load(): the OpenAI builder stores weights in fp16 (convert_weights); on CPU the model is then cast
to fp32, on a GPU it stays in that mixed fp16 form (dtype="float32" forces fp32 there). Preprocessing is
longclip's _transform: resize short side 224 bicubic, centre crop 224, RGB, CLIP mean/std.
"""
from __future__ import annotations

from pathlib import Path

from harness.scorers import weights as W
from harness.scorers.base import ImageEmbedder

LONGCLIP_ONLY_KEYS = ("positional_embedding_res", "mask1", "mask2")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class LongCLIPScorer(ImageEmbedder):
    name = "longclip"
    kinds = ("embed",)
    default_weights = "BeichenZhang/LongCLIP-L"
    gpu_dtype = "float16"
    preprocessing = ("longclip _transform (resize short side to the model resolution bicubic, centre crop, CLIP "
                     "mean/std); encode_image of the OpenAI-format image tower")

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 16, filename: str = "longclip-L.pt"):
        super().__init__(weights, revision, device, dtype, batch_size)
        if self.dtype_request == "bfloat16":
            raise ValueError("longclip runs in float32 or in longclip.load's mixed float16, not bfloat16")
        self.filename = filename

    def settings(self) -> dict:
        return {**super().settings(), "filename": self.filename}

    def weights_identity(self) -> str:
        return super().weights_identity() + f"/{self.filename}"

    def _checkpoint(self) -> Path:
        local = self.local_source()
        if local is not None:
            path = local / self.filename if local.is_dir() else local
            if not path.is_file():
                raise W.missing_weights(self.name, self.weights, files=f"the LongCLIP checkpoint {self.filename}")
            return path
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(self.weights, self.filename, revision=self._commit or self.revision))
        except Exception as e:  # no network, unknown repo, gated: the same one-line answer
            raise W.missing_weights(self.name, self.weights, e) from None

    def _load(self) -> None:
        import torch
        from open_clip.model import build_model_from_openai_state_dict
        from torchvision import transforms as T

        path = self._checkpoint()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise W.missing_weights(self.name, str(path), e, files="a LongCLIP state dict (longclip-L.pt)") from None
        state = dict(state.get("state_dict", state))
        for key in LONGCLIP_ONLY_KEYS:
            state.pop(key, None)
        model = build_model_from_openai_state_dict(state, quick_gelu=True)
        if self.dtype == torch.float32:
            model = model.float()  # what longclip.load does on CPU
        self._m_model = model.to(self.device).eval()
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self._m_preprocess = T.Compose([
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
            lambda im: im.convert("RGB"), T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)])

    def image_features(self, images: list):
        import torch

        pixels = torch.stack([self._m_preprocess(im) for im in images]).to(self.device)
        return self._m_model.encode_image(pixels.to(self._m_model.visual.conv1.weight.dtype))
