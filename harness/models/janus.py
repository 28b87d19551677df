"""Janus / Janus-Pro through transformers' `JanusForConditionalGeneration` and `JanusProcessor`.

One adapter serves the hub checkpoints (deepseek-community/Janus-Pro-1B and -7B), any local Janus folder, trainer
checkpoints (PEFT adapters on a base), and the bundled `tiny-janus`, which is just a small Janus folder shipped in
the package. Construction only locates files; weights load on the first request.

Request params. understand: `max_new_tokens`, `do_sample` (greedy unless true), `temperature`, `top_k`.
generate: `size` (int, [w, h] or "WxH"; the native image is resized when it differs), `guidance_scale` (or
`guidance`, `cfg_scale`), `temperature`, `top_k`. A request's params win over `--model-args` defaults, which win
over the checkpoint's generation config. Each generated image uses a generator seeded with `request.seed` alone.
"""
from __future__ import annotations

import json

from harness.errors import HarnessError
from harness.models.checkpoints import TINY_DIR, Source, locate
from harness.models.common import (TransformersAdapter, apply_adapter, as_bool, check_dtype, loading_failed,
                                   parse_size, pretraining_summary)
from harness.models.janus_prompts import generation_prompt, understanding_prompt
from harness.runner import fingerprint_of, free_accelerator_memory, placing_weights
from harness.types import Request, Response

__all__ = ["ADAPTER_VERSION", "DEFAULTS", "JanusAdapter", "parse_size"]

#: bump when prompting or sampling code changes what a given checkpoint outputs
ADAPTER_VERSION = 1
DEFAULTS = {"guidance_scale": 5.0, "temperature": 1.0, "top_k": None, "max_new_tokens": 128}


class JanusAdapter(TransformersAdapter):
    name = "janus"

    def __init__(self, spec: str = "janus", model: str | None = None, revision: str | None = None,
                 device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
                 guidance_scale: float | None = None, guidance: float | None = None,
                 temperature: float | None = None, top_k: int | None = None, max_new_tokens: int | None = None,
                 merge_lora: bool = True, download: bool = False):
        if spec == "janus":
            if not model:
                raise HarnessError("--model janus needs the checkpoint: pass a hub id or folder as --model, or "
                                   "--model-args '{\"model\": \"deepseek-community/Janus-Pro-1B\"}'")
            spec = model
        check_dtype(dtype)
        self.spec = spec
        self.source: Source = locate(spec, revision=revision, download=as_bool(download))
        self.device_arg = device
        self.dtype_arg = dtype
        self.batch_size = int(batch_size) if batch_size else None
        self.merge_lora = as_bool(merge_lora)
        self.overrides = {"guidance_scale": guidance_scale if guidance_scale is not None else guidance,
                          "temperature": temperature, "top_k": top_k, "max_new_tokens": max_new_tokens}
        root = self.source.base or self.source
        self.default_data = "shapes" if root.path == TINY_DIR else None
        self._config = json.loads((self.source.path / "config.json").read_text())
        self._model = None
        self._processor = None
        self._peft = None
        self._fp: str | None = None

    # ------------------------------------------------------------------------------------------ identity

    @property
    def native_size(self) -> int:
        vision = self._config.get("vision_config", {})
        return int(vision.get("image_size", 384))

    def defaults(self) -> dict:
        """Generation defaults: --model-args, else the checkpoint's generation config, else Janus-Pro's own."""
        out = dict(DEFAULTS)
        gen_file = self.source.path / "generation_config.json"
        if gen_file.is_file():
            gen = json.loads(gen_file.read_text())
            if gen.get("guidance_scale") is not None:
                out["guidance_scale"] = float(gen["guidance_scale"])
            extra = gen.get("generation_kwargs") or {}
            for key in ("temperature", "top_k"):
                if extra.get(f"image_{key}") is not None:
                    out[key] = extra[f"image_{key}"]
        out.update({k: v for k, v in self.overrides.items() if v is not None})
        return out

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = fingerprint_of("janus", ADAPTER_VERSION, self.source.identity(), self.dtype_name(),
                                      self.device().split(":")[0], self.defaults(),
                                      self.merge_lora if self.source.adapter_dir else None,
                                      *filter(None, [self.reduction_context()]))
        return self._fp

    def describe(self) -> dict:
        out = {"name": self.name, "fingerprint": self.fingerprint(), "source": self.source.describe(),
               "dtype": self.dtype_name(), "device": self.device(), "defaults": self.defaults(),
               "native_image_size": self.native_size,
               "image_resize": f"generated images are {self.native_size}x{self.native_size} and are resized "
                               "(bicubic) to the requested size when it differs"}
        if self.source.adapter_dir:
            out["merge_lora"] = self.merge_lora
        training = pretraining_summary(self.source)
        if training:
            out["training"] = training
        return out

    # ------------------------------------------------------------------------------------------ loading

    def load(self):
        """(model, processor), loading them on first use."""
        if self._model is None:
            import torch
            from transformers import JanusForConditionalGeneration, JanusProcessor
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            dtype = getattr(torch, self.dtype_name())
            try:
                model = JanusForConditionalGeneration.from_pretrained(self.source.path, dtype=dtype,
                                                                      use_safetensors=True)
                processor = JanusProcessor.from_pretrained(self.source.path)
            except Exception as e:
                raise loading_failed(self.spec, self.source.path, e) from None
            self._peft = []
            model = apply_adapter(model, self.source.adapter_dir, self.merge_lora, self._peft, self.spec)
            with placing_weights(self.spec, self.device()):
                self._model = model.to(self.device()).eval()
            self._processor = processor
        return self._model, self._processor

    def unload(self) -> None:
        self._model = self._processor = self._peft = None
        free_accelerator_memory()

    @property
    def training_image_size(self) -> int:
        """The side of every training image: the understanding encoder's input, which is also the generated one."""
        return self.native_size

    def training_hooks_class(self):
        """The training hooks' class (what the trainer checks its flags against before any weights load)."""
        from harness.models.janus_hooks import JanusHooks

        return JanusHooks

    def training_hooks(self):
        """The training-facing interface (see harness.models.hooks) on this adapter's loaded model."""
        model, processor = self.load()
        return self.training_hooks_class()(model, processor)

    # ------------------------------------------------------------------------------------------ prompts

    def understanding_prompt(self, text: str, n_images: int) -> str:
        _, processor = self.load()
        return understanding_prompt(processor, text, n_images)

    def generation_prompt(self, text: str) -> str:
        _, processor = self.load()
        return generation_prompt(processor, text)

    # ------------------------------------------------------------------------------------------ requests

    def understand(self, requests: list[Request]) -> list[Response]:
        import torch
        from harness.models.janus_decode import decode_text, generators_for, image_features

        model, processor = self.load()
        out: list[Response | None] = [None] * len(requests)
        tok = processor.tokenizer
        for chunk in self._chunks(requests, self._text_params):
            max_new, temp, top_k = self._text_params(chunk[0][1])
            prompts = [understanding_prompt(processor, r.text or "", len(r.images)) for _, r in chunk]
            images = [im.pil() for _, r in chunk for im in r.images]
            enc = processor(text=prompts, images=images or None, return_tensors="pt", padding=True)
            dev = self.device()
            with torch.inference_mode():
                visual = None
                if images:
                    visual = image_features(model, enc["pixel_values"].to(dev, model.dtype))
                gens = generators_for([r.seed for _, r in chunk], dev)
                answers = decode_text(model, enc["input_ids"].to(dev), enc["attention_mask"].to(dev), visual,
                                      max_new_tokens=max_new, temperature=temp, generators=gens,
                                      eos_id=tok.eos_token_id, top_k=top_k)
            for (i, _), ids in zip(chunk, answers):
                out[i] = Response(text=tok.decode(ids, skip_special_tokens=True).strip())
        return out

    def generate(self, requests: list[Request]) -> list[Response]:
        import torch
        from PIL import Image as PILImage
        from harness.models.janus_decode import decode_codes, generators_for, sample_image_codes, to_pil

        bad = {i: Response.failure("generate needs a text prompt") for i, r in enumerate(requests)
               if r.text is None}   # "" is a prompt (an empty caption in UnifiedBench: UAE draws from it)
        model, processor = self.load()
        out: list[Response | None] = [bad.get(i) for i in range(len(requests))]
        tok = processor.tokenizer
        todo = [r for i, r in enumerate(requests) if i not in bad]
        index = [i for i in range(len(requests)) if i not in bad]
        for chunk in self._chunks(todo, self._image_params):
            guidance, temp, top_k = self._image_params(chunk[0][1])
            prompts = [generation_prompt(processor, r.text) for _, r in chunk]
            enc = processor(text=prompts, generation_mode="image", return_tensors="pt", padding=True)
            dev = self.device()
            with torch.inference_mode():
                gens = generators_for([r.seed for _, r in chunk], dev)
                codes = sample_image_codes(
                    model, enc["input_ids"].to(dev), enc["attention_mask"].to(dev), guidance=[guidance] * len(chunk),
                    temperature=[temp] * len(chunk), generators=gens, top_k=top_k, bos_id=tok.bos_token_id,
                    boi_id=tok.convert_tokens_to_ids(processor.image_start_token), pad_id=tok.pad_token_id)
                pixels = decode_codes(model, codes)
            for (j, r), px in zip(chunk, pixels):
                img = to_pil(px)
                size = parse_size((r.params or {}).get("size"))
                if size and size != img.size:
                    img = img.resize(size, PILImage.BICUBIC)
                out[index[j]] = Response(images=(img,))
        return out
