"""Composite models: an understanding model plus a generation model, or either one alone.

Understanding: any transformers image-text-to-text model (`AutoModelForImageTextToText` + `AutoProcessor`, prompted
through the processor's chat template), e.g. Qwen/Qwen2.5-VL-3B-Instruct. Generation: any diffusers text-to-image
pipeline (`AutoPipelineForText2Image`), e.g. stabilityai/stable-diffusion-3.5-large or a SANA pipeline.

    --model composite --model-args '{"understand": UND, "generate": GEN}'    the pair (either key alone: one half)
    --model UND+GEN                                                          the same pair, short form
    --model vlm --model-args '{"understand": UND}'                           understanding only
    --model t2i --model-args '{"generate": GEN}'                             generation only
    --model FOLDER_OR_HUB_ID   a transformers image-text-to-text folder: understanding only; a diffusers folder
                               (model_index.json): generation only

UND and GEN are hub ids (read from the local Hugging Face cache only) or local folders. The model's `kinds` are the
halves it has, so the engine refuses a named task needing the other before any work and skips it within a suite.
Construction only locates files; each half loads on its first request (bf16 on a GPU that has it, fp32 on CPU).

understand: greedy unless a request asks to sample; greedy requests are batched (left padding), sampled ones run
one at a time from a generator seeded with the request's seed, so an answer never depends on its neighbours' RNG
draws. generate: one torch.Generator per request seeded with its seed; the pipeline's own defaults for steps,
guidance and size unless --model-args sets them; `images_per_call` requests share one pipeline call (default 1:
batched kernels reduce in a batch-dependent order, so only one image per call keeps every image bit-identical
whatever batch it lands in, as resumed and multi-process runs need). An image is resized (bicubic) to the size a
task asks for when it differs from the pipeline's.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

from harness.errors import HarnessError
from harness.models.checkpoints import HUB_ID, Source, hub_snapshot, locate
from harness.models.common import TransformersAdapter, check_dtype, loading_failed, parse_size
from harness.models.pipeline_files import is_pipeline, locate_pipeline
from harness.runner import fingerprint_of, free_accelerator_memory, placing_weights
from harness.types import Request, Response

#: bump when prompting or decoding code changes what given weights output
ADAPTER_VERSION = 1
#: registered names -> the halves they must (and may only) be given
REGISTERED = {"composite": ("understand", "generate"), "vlm": ("understand",), "t2i": ("generate",)}
DEFAULTS = {"max_new_tokens": 128, "system_prompt": None}
#: pipeline call arguments a user may set; left out of the call (so the pipeline's defaults apply) when unset
PIPELINE_SETTINGS = ("num_inference_steps", "guidance_scale", "height", "width", "negative_prompt")
EXAMPLE = ('--model composite --model-args \'{"understand": "Qwen/Qwen2.5-VL-3B-Instruct", '
           '"generate": "stabilityai/stable-diffusion-3.5-large"}\'')


def is_pair_spec(spec: str) -> bool:
    """'UND+GEN' (the short form of a pair): two hub ids or folders joined by '+', which hub ids never contain."""
    parts = spec.split("+")
    return len(parts) == 2 and all(p.strip() for p in parts) and not Path(spec).expanduser().exists()


def is_generation_model(spec: str, revision: str | None = None) -> bool:
    """A diffusers pipeline: a folder, or a cached hub snapshot, with model_index.json."""
    path = Path(spec).expanduser()
    if path.exists():
        return is_pipeline(path)
    found = hub_snapshot(spec, revision) if HUB_ID.match(spec) else None
    return found is not None and is_pipeline(found[0])


def halves_of(spec: str, understand: str | None, generate: str | None) -> dict[str, str]:
    """{"understand": UND, "generate": GEN} for the halves a spec and its --model-args name."""
    given = {k: v for k, v in (("understand", understand), ("generate", generate)) if v}
    if spec in REGISTERED:
        allowed = REGISTERED[spec]
        stray = [k for k in given if k not in allowed]
        if stray:
            other = "t2i" if stray[0] == "generate" else "vlm"
            raise HarnessError(f"--model-args {stray[0]}: --model {spec} has no {stray[0]} half (use --model "
                               f"composite for a pair, --model {other} for {stray[0]} alone)")
        if spec != "composite" and not given:
            raise HarnessError(f"--model {spec} needs --model-args '{{\"{allowed[0]}\": HUB_ID_OR_FOLDER}}'")
        if not given:
            raise HarnessError(f"--model composite needs its halves, e.g. {EXAMPLE} (either key alone gives a "
                               "single-capability model)")
        return given
    if given:
        raise HarnessError(f"--model-args understand/generate apply to --model composite, vlm or t2i, not {spec}")
    if is_pair_spec(spec):
        und, gen = (p.strip() for p in spec.split("+"))
        return {"understand": und, "generate": gen}
    return {"generate": spec} if is_generation_model(spec) else {"understand": spec}


class CompositeAdapter(TransformersAdapter):
    name = "composite"

    def __init__(self, spec: str = "composite", understand: str | None = None, generate: str | None = None,
                 understand_revision: str | None = None, generate_revision: str | None = None,
                 revision: str | None = None,
                 device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
                 max_new_tokens: int | None = None, system_prompt: str | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 height: int | None = None, width: int | None = None, negative_prompt: str | None = None,
                 images_per_call: int = 1):
        check_dtype(dtype)
        if int(images_per_call) < 1:
            raise HarnessError("--model-args images_per_call: give at least 1")
        self.spec = spec
        self.device_arg, self.dtype_arg = device, dtype
        self.batch_size = int(batch_size) if batch_size else None
        self.images_per_call = int(images_per_call)
        self.overrides = {"max_new_tokens": max_new_tokens, "system_prompt": system_prompt}
        self.pipeline_settings = {k: v for k, v in (("num_inference_steps", num_inference_steps),
                                                    ("guidance_scale", guidance_scale), ("height", height),
                                                    ("width", width), ("negative_prompt", negative_prompt))
                                  if v is not None}
        targets = halves_of(spec, understand, generate)
        if revision is not None:       # the spelling every other adapter takes: unambiguous for one half only
            if len(targets) > 1:
                raise HarnessError(f"--model-args revision for {spec}: a pair has two revisions; give "
                                   "understand_revision and/or generate_revision")
            understand_revision = understand_revision or revision
            generate_revision = generate_revision or revision
        self.halves: dict[str, Source] = {}
        if "understand" in targets:
            if is_generation_model(targets["understand"], understand_revision):
                raise HarnessError(f"--model {spec}: {targets['understand']} is a diffusers pipeline, not an "
                                   "understanding model; give it as the generate half")
            self.halves["understand"] = locate(targets["understand"], revision=understand_revision, names={})
        if "generate" in targets:
            self.halves["generate"] = locate_pipeline(targets["generate"], revision=generate_revision)
        self.kinds = tuple(k for k in ("understand", "generate") if k in self.halves)
        self.default_data = None
        self._understander = None      # (model, processor) once loaded
        self._pipeline = None
        self._fp: str | None = None

    # ------------------------------------------------------------------------------------------ identity

    @property
    def label(self) -> str:
        """The pair's name for results folders and leaderboard rows: each half's hub id (a local folder: its name),
        joined by '+'."""
        return "+".join(s.hub_id or Path(s.spec).expanduser().resolve().name for s in self.halves.values())

    def capability_hint(self, kinds: tuple[str, ...]) -> str:
        missing = "generate" if "generate" in kinds else "understand"
        example = ("stabilityai/stable-diffusion-3.5-large" if missing == "generate"
                   else "Qwen/Qwen2.5-VL-3B-Instruct")
        have = {k: s.hub_id or s.spec for k, s in self.halves.items()}
        pair = json.dumps({**have, missing: example})
        return f"add the {missing} half: --model composite --model-args '{pair}' (or run a suite: it skips them)"

    def run(self, kind: str, requests):
        if kind in REGISTERED["composite"] and kind not in self.kinds:      # called directly, past the engine's check
            raise HarnessError(f"--model {self.spec} has no {kind} half ({kind} requests need it): "
                               + self.capability_hint((kind,)))
        return super().run(kind, requests)

    def defaults(self) -> dict:
        return {**DEFAULTS, **{k: v for k, v in self.overrides.items() if v is not None}}

    def pipeline_defaults(self) -> dict:
        """The generation settings in force: the pipeline class's own call defaults (read from its signature, no
        weights loaded), overridden by --model-args."""
        source = self.halves.get("generate")
        if source is None:
            return {}
        out = {"pipeline": source.class_name()}
        cls = _pipeline_class(out["pipeline"])
        if cls is not None:
            params = inspect.signature(cls.__call__).parameters
            out.update({k: params[k].default for k in PIPELINE_SETTINGS
                        if k in params and params[k].default is not inspect.Parameter.empty})
        out.update(self.pipeline_settings)
        out["images_per_call"] = self.images_per_call
        return out

    def fingerprint(self) -> str:
        if self._fp is None:
            halves = {k: s.identity() for k, s in self.halves.items()}
            self._fp = fingerprint_of("composite", ADAPTER_VERSION, halves, self.dtype_name(),
                                      self.device().split(":")[0], self.defaults(), self.pipeline_defaults(),
                                      *filter(None, [self.reduction_context()]))
        return self._fp

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "fingerprint": self.fingerprint(),
                "dtype": self.dtype_name(), "device": self.device(), "capabilities": list(self.kinds),
                "defaults": self.defaults(), "generation": self.pipeline_defaults(),
                "halves": {k: s.describe() for k, s in self.halves.items()}}

    # ------------------------------------------------------------------------------------------ loading

    def _dtype(self):
        import torch

        return getattr(torch, self.dtype_name())

    def understander(self):
        """(model, processor) of the understanding half, loaded on first use."""
        if self._understander is None:
            from transformers import AutoModelForImageTextToText, AutoProcessor
            from transformers.utils import logging as hf_logging

            source = self.halves["understand"]
            hf_logging.disable_progress_bar()
            try:
                model = AutoModelForImageTextToText.from_pretrained(source.path, dtype=self._dtype(),
                                                                    use_safetensors=True)
                processor = AutoProcessor.from_pretrained(source.path)
            except Exception as e:
                raise loading_failed(self.spec, source.path, e) from None
            if getattr(processor, "chat_template", None) is None:
                raise HarnessError(f"loading {self.spec} from {source.path} failed: the processor has no chat "
                                   "template (chat_template.jinja), so questions cannot be put to it")
            processor.tokenizer.padding_side = "left"      # batched decoding appends after the prompt
            with placing_weights(f"{self.spec}'s understanding half", self.device()):
                self._understander = (model.to(self.device()).eval(), processor)
        return self._understander

    def pipeline(self):
        """The diffusers pipeline of the generation half, loaded on first use."""
        if self._pipeline is None:
            source = self.halves["generate"]
            try:
                from diffusers import AutoPipelineForText2Image
            except ImportError:
                raise HarnessError(f"--model {self.spec}: its generation half needs diffusers; install it with "
                                   "`pip install -e \".[scorers]\"`") from None
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.disable_progress_bar()
            try:
                pipe = AutoPipelineForText2Image.from_pretrained(source.path, dtype=self._dtype(),
                                                                 use_safetensors=True)
            except Exception as e:
                raise loading_failed(self.spec, source.path, e) from None
            pipe.set_progress_bar_config(disable=True)
            with placing_weights(f"{self.spec}'s generation half", self.device()):
                self._pipeline = pipe.to(self.device())
        return self._pipeline

    def unload(self) -> None:
        self._understander = self._pipeline = None
        free_accelerator_memory()

    # ------------------------------------------------------------------------------------------ requests

    def _prompt(self, processor, r: Request) -> str:
        system = self.defaults()["system_prompt"]
        messages = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
        content = [{"type": "image"} for _ in r.images] + [{"type": "text", "text": r.text or ""}]
        messages.append({"role": "user", "content": content})
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _answer(self, model, processor, chunk, max_new: int, temp: float, top_k: int | None) -> list[str]:
        import torch

        prompts = [self._prompt(processor, r) for r in chunk]
        images = [im.pil().convert("RGB") for r in chunk for im in r.images]
        enc = processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
        enc = {k: v.to(self.device()) for k, v in enc.items()}
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(model.dtype)
        sampling = {"do_sample": True, "temperature": temp, "top_k": top_k} if temp > 0 else \
            {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
        tok = processor.tokenizer
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new, pad_token_id=tok.pad_token_id or tok.eos_token_id,
                                 **sampling)
        return [t.strip() for t in processor.batch_decode(out[:, enc["input_ids"].shape[1]:],
                                                          skip_special_tokens=True)]

    def understand(self, requests: list[Request]) -> list[Response]:
        import torch

        if not requests:
            return []
        model, processor = self.understander()
        out: list[Response | None] = [None] * len(requests)
        for chunk in self._chunks(requests, self._text_params):
            max_new, temp, top_k = self._text_params(chunk[0][1])
            if temp > 0:       # sampled: one at a time, the RNG seeded with the request's own seed
                for i, r in chunk:
                    with torch.random.fork_rng(devices=self._rng_devices()):
                        torch.manual_seed(r.seed)
                        out[i] = Response(text=self._answer(model, processor, [r], max_new, temp, top_k)[0])
                continue
            for (i, _), text in zip(chunk, self._answer(model, processor, [r for _, r in chunk], max_new, temp,
                                                        top_k)):
                out[i] = Response(text=text)
        return out

    def _rng_devices(self) -> list:
        import torch

        dev = torch.device(self.device())
        return [dev.index or 0] if dev.type == "cuda" else []

    def generate(self, requests: list[Request]) -> list[Response]:
        import torch
        from PIL import Image as PILImage

        # "" is a prompt (an empty caption in UnifiedBench: UAE's pipeline draws from it)
        out: list[Response | None] = [None if r.text is not None else Response.failure("generate needs a text prompt")
                                      for r in requests]
        todo = [(i, r) for i, r in enumerate(requests) if r.text is not None]
        if not todo:
            return out
        pipe = self.pipeline()
        dev = self.device()
        for k in range(0, len(todo), self.images_per_call):
            call = todo[k:k + self.images_per_call]
            generators = [torch.Generator(dev).manual_seed(int(r.seed)) for _, r in call]
            with torch.inference_mode():
                images = pipe(prompt=[r.text for _, r in call], generator=generators, num_images_per_prompt=1,
                              output_type="pil", **self.pipeline_settings).images
            for (i, r), img in zip(call, images):
                size = parse_size((r.params or {}).get("size"))
                if size and size != img.size:
                    img = img.resize(size, PILImage.BICUBIC)
                out[i] = Response(images=(img.convert("RGB"),))
        return out


def _pipeline_class(name: str | None):
    """The pipeline class a model_index.json `_class_name` names (diffusers imports only that one), or None."""
    if not name:
        return None
    try:
        import diffusers

        return getattr(diffusers, name, None)
    except ImportError:
        return None
