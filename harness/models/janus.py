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
from harness.options import as_bool as _as_bool
from harness.models.checkpoints import TINY_DIR, Source, locate
from harness.models.janus_prompts import generation_prompt, understanding_prompt
from harness.runner import UnifiedModel, fingerprint_of, free_accelerator_memory
from harness.types import Request, Response

#: bump when prompting or sampling code changes what a given checkpoint outputs
ADAPTER_VERSION = 1
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}
DEFAULTS = {"guidance_scale": 5.0, "temperature": 1.0, "top_k": None, "max_new_tokens": 128}


def parse_size(value) -> tuple[int, int] | None:
    """Requested image size: int, [w, h] or "WxH" -> (w, h)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace("x", " ").split()
        value = [int(p) for p in parts] if len(parts) == 2 else int(parts[0])
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]


class JanusAdapter(UnifiedModel):
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
        if dtype is not None and str(dtype).lower() not in (*DTYPES, "auto"):
            raise HarnessError(f"--model-args dtype {dtype!r}: use one of auto, {', '.join(sorted(set(DTYPES)))}")
        self.spec = spec
        self.source: Source = locate(spec, revision=revision, download=_as_bool(download))
        self.device_arg = device
        self.dtype_arg = dtype
        self.batch_size = int(batch_size) if batch_size else None
        self.merge_lora = _as_bool(merge_lora)
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

    def device(self) -> str:
        import torch

        if self.device_arg in (None, "", "auto"):
            return "cuda" if torch.cuda.is_available() else "cpu"
        return str(self.device_arg)

    def dtype_name(self) -> str:
        import torch

        if self.dtype_arg not in (None, "", "auto"):
            return DTYPES[str(self.dtype_arg).lower()]
        if self.device().startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32"

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
            device = self.device().split(":")[0]
            parts = ["janus", ADAPTER_VERSION, self.source.identity(), self.dtype_name(), device, self.defaults(),
                     self.merge_lora if self.source.adapter_dir else None]
            if device == "cpu":   # CPU kernels reduce in an order that depends on the thread count
                import torch

                parts.append({"cpu_threads": torch.get_num_threads()})
            self._fp = fingerprint_of(*parts)
        return self._fp

    def describe(self) -> dict:
        out = {"name": self.name, "fingerprint": self.fingerprint(), "source": self.source.describe(),
               "dtype": self.dtype_name(), "device": self.device(), "defaults": self.defaults(),
               "native_image_size": self.native_size,
               "image_resize": f"generated images are {self.native_size}x{self.native_size} and are resized "
                               "(bicubic) to the requested size when it differs"}
        if self.source.adapter_dir:
            out["merge_lora"] = self.merge_lora
        training = (self.source.base or self.source).path / "training.json"
        if training.is_file():
            meta = json.loads(training.read_text())
            out["training"] = {k: meta.get(k) for k in ("seed", "world_version", "device", "wall_seconds", "steps")}
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
            # any failure here (a truncated safetensors file, a bad config) would fail every request alike:
            # one line naming the files instead
            try:
                model = JanusForConditionalGeneration.from_pretrained(self.source.path, dtype=dtype,
                                                                      use_safetensors=True)
                processor = JanusProcessor.from_pretrained(self.source.path)
            except Exception as e:
                raise HarnessError(f"loading {self.spec} from {self.source.path} failed: {_one_line(e)}") from None
            if self.source.adapter_dir is not None:
                from peft import PeftModel

                try:
                    peft = PeftModel.from_pretrained(model, str(self.source.adapter_dir), is_trainable=False)
                except Exception as e:
                    raise HarnessError(f"loading the adapter of {self.spec} from {self.source.adapter_dir} failed "
                                       f"(damaged or incomplete files?): {_one_line(e)}") from None
                if self.merge_lora:
                    model = peft.merge_and_unload()
                else:  # the LoRA layers live inside the base modules; keep the wrapper alive with them
                    self._peft = peft
                    model = peft.get_base_model()
            self._model = model.to(self.device()).eval()
            self._processor = processor
        return self._model, self._processor

    def unload(self) -> None:
        self._model = self._processor = self._peft = None
        free_accelerator_memory()

    def training_hooks(self):
        """The training-facing interface (see harness.models.hooks) on this adapter's loaded model."""
        from harness.models.janus_hooks import JanusHooks

        model, processor = self.load()
        return JanusHooks(model, processor)

    # ------------------------------------------------------------------------------------------ prompts

    def understanding_prompt(self, text: str, n_images: int) -> str:
        _, processor = self.load()
        return understanding_prompt(processor, text, n_images)

    def generation_prompt(self, text: str) -> str:
        _, processor = self.load()
        return generation_prompt(processor, text)

    # ------------------------------------------------------------------------------------------ requests

    def _chunks(self, requests: list[Request], key):
        """Requests grouped by decoding params, each group sorted by prompt length (less padding) and cut into
        batches; yields lists of (index, request)."""
        groups: dict = {}
        for i, r in enumerate(requests):
            groups.setdefault(key(r), []).append((i, r))
        size = self.batch_size or max(1, len(requests))
        for items in groups.values():
            items.sort(key=lambda p: (len(p[1].images), len(p[1].text or "")))
            for k in range(0, len(items), size):
                yield items[k:k + size]

    def _text_params(self, r: Request) -> tuple:
        p, d = r.params or {}, self.defaults()
        sample = _as_bool(p.get("do_sample", False))
        temp = float(p.get("temperature", 1.0)) if sample else 0.0
        top_k = p.get("top_k")
        return int(p.get("max_new_tokens") or d["max_new_tokens"]), temp, int(top_k) if top_k else None

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

    def _image_params(self, r: Request) -> tuple:
        p, d = r.params or {}, self.defaults()
        g = next((p[k] for k in ("guidance_scale", "guidance", "cfg_scale") if p.get(k) is not None),
                 d["guidance_scale"])
        top_k = p.get("top_k", d["top_k"])
        return float(g), float(p.get("temperature", d["temperature"])), int(top_k) if top_k else None

    def generate(self, requests: list[Request]) -> list[Response]:
        import torch
        from PIL import Image as PILImage
        from harness.models.janus_decode import decode_codes, generators_for, sample_image_codes, to_pil

        bad = {i: Response.failure("generate needs a text prompt") for i, r in enumerate(requests) if not r.text}
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
