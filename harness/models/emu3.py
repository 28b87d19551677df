"""Emu3 through transformers' `Emu3ForConditionalGeneration` and `Emu3Processor`.

Emu3 ships its understanding and generation weights as two checkpoints (BAAI/Emu3-Chat-hf answers, BAAI/Emu3-Gen-hf
draws), so one adapter holds up to two halves:

    --model emu3         the pair: understand with Emu3-Chat-hf, generate with Emu3-Gen-hf
                         (--model-args '{"chat": PATH_OR_HUB_ID, "gen": PATH_OR_HUB_ID}' points at other copies)
    --model emu3-chat    Emu3-Chat-hf alone: understanding only     --model emu3-gen   Emu3-Gen-hf alone
    a folder or hub id   one Emu3 network that does both (e.g. a small test model); the two known hub ids above
                         given directly are the halves they are
    a trainer checkpoint its LoRA applies to the half it was trained on (the chat half of the pair)

A run that names a task a half cannot serve stops before any work with one line saying which model to use (a
suite skips such tasks; harness/capabilities.py). Each half loads on its
first request; a network serving both kinds loads once. Construction only locates files.

Request params. understand: `max_new_tokens`, `do_sample` (greedy unless true), `temperature`, `top_k`.
generate: `size` (the native image is resized when it differs), `guidance_scale` (or `guidance`, `cfg_scale`),
`temperature`, `top_k`. A request's params win over `--model-args` defaults, which win over the checkpoint's
generation config, which wins over Emu3's own (guidance 3, top-k 2048, temperature 1).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from harness.errors import HarnessError, WeightsError
from harness.models.checkpoints import TINY_EMU3_DIR, Source, locate
from harness.models.common import (TransformersAdapter, apply_adapter, as_bool, check_dtype, loading_failed,
                                   parse_size, pretraining_summary)
from harness.models.emu3_decode import NEGATIVE_PROMPT, SYSTEM_PROMPT, understanding_prompt
from harness.runner import fingerprint_of, free_accelerator_memory, placing_weights
from harness.types import Request, Response

#: bump when prompting or sampling code changes what a given checkpoint outputs
ADAPTER_VERSION = 1
CHAT_HUB, GEN_HUB = "BAAI/Emu3-Chat-hf", "BAAI/Emu3-Gen-hf"
#: registered names -> where their files are (the pair's trained half is its chat half)
NAMES = {"emu3": CHAT_HUB, "emu3-chat": CHAT_HUB, "emu3-gen": GEN_HUB, "tiny-emu3": str(TINY_EMU3_DIR)}
ROLES = {"emu3": ("chat", "gen"), "emu3-chat": ("chat",), "emu3-gen": ("gen",), CHAT_HUB: ("chat",),
         GEN_HUB: ("gen",)}
DEFAULTS = {"guidance_scale": 3.0, "temperature": 1.0, "top_k": 2048, "max_new_tokens": 128,
            "negative_prompt": NEGATIVE_PROMPT, "positive_prompt": "", "system_prompt": SYSTEM_PROMPT,
            "image_area": None}
KIND_OF = {"chat": "understand", "gen": "generate"}


class Emu3Adapter(TransformersAdapter):
    name = "emu3"

    def __init__(self, spec: str = "emu3", chat: str | None = None, gen: str | None = None,
                 revision: str | None = None, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, guidance_scale: float | None = None, guidance: float | None = None,
                 temperature: float | None = None, top_k: int | None = None, max_new_tokens: int | None = None,
                 negative_prompt: str | None = None, positive_prompt: str | None = None,
                 system_prompt: str | None = None, image_area: int | None = None, merge_lora: bool = True,
                 download: bool = False):
        check_dtype(dtype)
        self.spec = spec
        self.device_arg, self.dtype_arg = device, dtype
        self.batch_size = int(batch_size) if batch_size else None
        self.merge_lora = as_bool(merge_lora)
        self.overrides = {"guidance_scale": guidance_scale if guidance_scale is not None else guidance,
                          "temperature": temperature, "top_k": top_k, "max_new_tokens": max_new_tokens,
                          "negative_prompt": negative_prompt, "positive_prompt": positive_prompt,
                          "system_prompt": system_prompt, "image_area": image_area}
        self.halves = self._locate(spec, {"chat": chat, "gen": gen}, revision, as_bool(download))
        self.kinds = tuple(KIND_OF[r] for r in ("chat", "gen") if r in self.halves)
        # the bundled model knows only the embedded world
        first = self.halves["chat" if "chat" in self.halves else "gen"]
        self.default_data = "shapes" if (first.base or first).path == TINY_EMU3_DIR else None
        self._loaded: dict[str, tuple] = {}     # source path + adapter -> (model, processor)
        self._peft: list = []
        self._fp: str | None = None

    @staticmethod
    def _locate(spec: str, where: dict, revision, download) -> dict[str, Source]:
        """{"chat": Source, "gen": Source} for the halves this spec has (one Source for both when one network)."""
        base = spec
        meta_file = Path(spec).expanduser() / "harness.json"
        if meta_file.is_file():             # a trainer checkpoint: its base model says which halves it has
            try:
                base = json.loads(meta_file.read_text()).get("base_model") or spec
            except json.JSONDecodeError as e:
                raise HarnessError(f"{meta_file}: not valid JSON ({e})") from None
        roles = ROLES.get(base)
        if roles is None:                   # one network that answers and draws
            if any(where.values()):
                raise HarnessError(f"--model-args chat/gen apply to --model emu3, emu3-chat or emu3-gen, not {spec}")
            one = locate(spec, revision=revision, download=download, names=NAMES)
            return {"chat": one, "gen": one}
        stray = [r for r in where if where[r] and r not in roles]
        if stray:
            raise HarnessError(f"--model-args {stray[0]}: --model {spec} has no {stray[0]} half "
                               "(use --model emu3 for the pair)")
        halves = {}
        for role in roles:
            target = where.get(role) or (CHAT_HUB if role == "chat" else GEN_HUB)
            if base != spec and role == roles[0]:
                target = spec               # the checkpoint's LoRA applies to its first half
            try:
                halves[role] = locate(target, revision=revision, download=download, names=NAMES)
            except WeightsError as e:
                if len(roles) == 1:
                    raise
                raise WeightsError(f"{e} (--model {spec} needs both halves; for understanding alone use --model "
                                   "emu3-chat, for generation alone --model emu3-gen)") from None
        return halves

    # ------------------------------------------------------------------------------------------ identity

    def _half(self, role: str) -> Source:
        if role not in self.halves:
            other = "emu3-gen" if role == "gen" else "emu3-chat"
            raise HarnessError(f"--model {self.spec} has no {'generation' if role == 'gen' else 'understanding'} "
                               f"weights ({KIND_OF[role]} requests need them): use --model emu3 (Emu3-Chat-hf + "
                               f"Emu3-Gen-hf) or --model {other}")
        return self.halves[role]

    def capability_hint(self, kinds: tuple[str, ...]) -> str:
        role = "gen" if "generate" in kinds else "chat"
        other = "emu3-gen" if role == "gen" else "emu3-chat"
        return (f"--model {self.spec} has no {'generation' if role == 'gen' else 'understanding'} weights: use "
                f"--model emu3 (Emu3-Chat-hf + Emu3-Gen-hf) or --model {other}")

    def run(self, kind: str, requests):
        if kind in KIND_OF.values() and kind not in self.kinds:
            self._half("gen" if kind == "generate" else "chat")      # raises the one-line message
        return super().run(kind, requests)

    def defaults(self) -> dict:
        """--model-args, else the generation half's generation_config.json (guidance_scale, top_k, temperature,
        image_area), else Emu3's own."""
        out = dict(DEFAULTS)
        if "gen" in self.halves:
            gen_file = self.halves["gen"].path / "generation_config.json"
            if gen_file.is_file():
                gen = json.loads(gen_file.read_text())
                out.update({k: gen[k] for k in ("guidance_scale", "top_k", "temperature", "image_area")
                            if gen.get(k) is not None})
        out.update({k: v for k, v in self.overrides.items() if v is not None})
        return out

    def fingerprint(self) -> str:
        if self._fp is None:
            halves = {r: s.identity() for r, s in sorted(self.halves.items())}
            lora = self.merge_lora if any(s.adapter_dir for s in self.halves.values()) else None
            self._fp = fingerprint_of("emu3", ADAPTER_VERSION, halves, self.dtype_name(),
                                      self.device().split(":")[0], self.defaults(), lora,
                                      *filter(None, [self.reduction_context()]))
        return self._fp

    def describe(self) -> dict:
        out = {"name": self.name, "fingerprint": self.fingerprint(), "dtype": self.dtype_name(),
               "device": self.device(), "defaults": self.defaults(), "capabilities": list(self.kinds),
               "halves": {r: s.describe() for r, s in self.halves.items()}}
        if any(s.adapter_dir for s in self.halves.values()):
            out["merge_lora"] = self.merge_lora
        training = pretraining_summary(self._trained())
        if training:
            out["training"] = training
        if "gen" in self.halves:
            side = self.generation_grid()[0] * 8
            out["native_image_size"] = side
            out["image_resize"] = (f"generated images are {side}x{side} and are resized (bicubic) to the requested "
                                   "size when it differs")
        return out

    # ------------------------------------------------------------------------------------------ loading

    def load(self, role: str = "chat"):
        """(model, processor) of a half, loading it on first use (a network serving both halves loads once)."""
        source = self._half(role)
        key = (str(source.path), str(source.adapter_dir))
        if key not in self._loaded:
            import torch
            from transformers import Emu3ForConditionalGeneration, Emu3Processor
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            try:
                model = Emu3ForConditionalGeneration.from_pretrained(
                    source.path, dtype=getattr(torch, self.dtype_name()), use_safetensors=True)
                processor = Emu3Processor.from_pretrained(source.path)
            except Exception as e:
                raise loading_failed(self.spec, source.path, e) from None
            processor.tokenizer.padding_side = "left"      # batched decoding needs it (transformers' Emu3 tip)
            model = apply_adapter(model, source.adapter_dir, self.merge_lora, self._peft, self.spec)
            with placing_weights(self.spec, self.device()):
                self._loaded[key] = (model.to(self.device()).eval(), processor)
        return self._loaded[key]

    def unload(self) -> None:
        self._loaded, self._peft = {}, []
        free_accelerator_memory()

    @property
    def training_image_size(self) -> int:
        """The side of every training image: the square the understanding processor gives (see emu3_hooks)."""
        from transformers import Emu3ImageProcessor

        from harness.models.emu3_hooks import square_side

        return square_side(Emu3ImageProcessor.from_pretrained(self._trained().path))

    def _trained(self) -> Source:
        return self.halves["chat"] if "chat" in self.halves else self.halves["gen"]

    def training_hooks_class(self):
        from harness.models.emu3_hooks import Emu3Hooks

        return Emu3Hooks

    def training_hooks(self):
        """The training-facing interface (harness.models.hooks) on the half the trainer post-trains: the chat half
        of the pair (the understanding player; its VQ decoder is Emu3's, the one both halves ship)."""
        from harness.models.emu3_hooks import Emu3Hooks

        model, processor = self.load("chat" if "chat" in self.halves else "gen")
        return Emu3Hooks(model, processor, system_prompt=self.defaults()["system_prompt"],
                         negative_prompt=self.defaults()["negative_prompt"])

    # ------------------------------------------------------------------------------------------ requests

    def understand(self, requests: list[Request]) -> list[Response]:
        import torch
        from harness.models.emu3_decode import decode_text, generators_for, image_embeddings

        if not requests:
            return []
        model, processor = self.load("chat")
        out: list[Response | None] = [None] * len(requests)
        tok, system = processor.tokenizer, self.defaults()["system_prompt"]
        for chunk in self._chunks(requests, self._text_params):
            max_new, temp, top_k = self._text_params(chunk[0][1])
            prompts = [understanding_prompt(processor, r.text or "", len(r.images), system) for _, r in chunk]
            images = [im.pil().convert("RGB") for _, r in chunk for im in r.images]
            enc = processor(text=prompts, images=images or None, return_tensors="pt", padding=True)
            dev = self.device()
            with torch.inference_mode():
                visual = None
                if images:
                    visual = image_embeddings(model, enc["pixel_values"].to(dev, model.dtype), enc["image_sizes"])
                gens = generators_for([r.seed for _, r in chunk], dev)
                answers = decode_text(model, enc["input_ids"].to(dev), enc["attention_mask"].to(dev), visual,
                                      max_new_tokens=max_new, temperature=temp, generators=gens,
                                      eos_id=tok.eos_token_id, top_k=top_k)
            for (i, _), ids in zip(chunk, answers):
                out[i] = Response(text=tok.decode(ids, skip_special_tokens=True).strip())
        return out

    def generation_grid(self) -> tuple[int, int]:
        """(h, w) VQ tokens of a generated image: the processor's square layout for `image_area` pixels (Emu3's
        default 518400, i.e. 90x90 tokens, 720 px; a generation config or --model-args may set it)."""
        area = self.defaults()["image_area"] or 518400
        side = int(round(math.sqrt(area) / 8))
        return side, side

    def generate(self, requests: list[Request]) -> list[Response]:
        import torch
        from PIL import Image as PILImage
        from harness.models.emu3_decode import (decode_codes, generation_inputs, generators_for,
                                                sample_image_codes, to_pil)

        bad = {i: Response.failure("generate needs a text prompt") for i, r in enumerate(requests)
               if r.text is None}   # "" is a prompt (an empty caption in UnifiedBench: UAE draws from it)
        if len(bad) == len(requests):
            return [bad[i] for i in range(len(requests))]
        model, processor = self.load("gen")
        d = self.defaults()
        out: list[Response | None] = [bad.get(i) for i in range(len(requests))]
        todo = [r for i, r in enumerate(requests) if i not in bad]
        index = [i for i in range(len(requests)) if i not in bad]
        grid = self.generation_grid()
        ip = processor.image_processor
        for chunk in self._chunks(todo, self._image_params):
            guidance, temp, top_k = self._image_params(chunk[0][1])
            prompts = [r.text.strip() + d["positive_prompt"] for _, r in chunk]
            if guidance != 1:                      # the negative prompt is the unconditional branch
                prompts += [d["negative_prompt"]] * len(chunk)
            enc = generation_inputs(processor, prompts, grid)
            dev = self.device()
            with torch.inference_mode():
                gens = generators_for([r.seed for _, r in chunk], dev)
                codes = sample_image_codes(model, enc["input_ids"].to(dev), enc["attention_mask"].to(dev), grid,
                                           guidance=[guidance] * len(chunk), temperature=[temp] * len(chunk),
                                           generators=gens, top_k=top_k)
                pixels = decode_codes(model, codes, grid)
            for (j, r), px in zip(chunk, pixels):
                img = to_pil(px, ip.image_mean, ip.image_std)
                size = parse_size((r.params or {}).get("size"))
                if size and size != img.size:
                    img = img.resize(size, PILImage.BICUBIC)
                out[index[j]] = Response(images=(img,))
        return out
