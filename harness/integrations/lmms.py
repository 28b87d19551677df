"""Our models inside lmms-eval: `python -m lmms_eval --model umm_harness --model_args checkpoint=<name or dir>`.

lmms-eval (0.7.3) finds external models through the entry-point group `lmms_eval.models`; pyproject.toml points it
at `manifest()` below, which names the class by path, so lmms-eval imports this module (and its torch stack) only
when our model is actually chosen. `checkpoint` is anything `python -m harness run --model` accepts: a registered
name (the bundled `tiny-janus`, `janus-pro-1b`, ...), a trainer checkpoint folder (LoRA included), a local Hugging
Face folder or a hub id. Other model_args go to the adapter as `--model-args` would (e.g. dtype=bfloat16), except
`include=<file or folder>[:...]`, which registers extra models first like `--include`.

lmms-eval's own `--batch_size` decides how many requests the wrapped model receives per call, after grouping by
generation settings (one call never mixes greedy and sampled decoding); a call that runs out of memory is halved
until it fits, and later calls keep to that size, as in `harness run`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from loguru import logger as eval_logger
from lmms_eval.api.model import lmms as LMMSBase
from tqdm import tqdm

from harness.batching import BatchCaller
from harness.distributed import from_env, rank_gpu
from harness.types import MODEL, Image, Request

MODEL_ID = "umm_harness"
ALIASES = ("harness",)
#: visual inputs lmms-eval tasks may pass as file paths that we can read as images
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: lmms-eval generation_kwargs that our `understand` requests understand; others (top_p, num_beams) have no
#: counterpart in the adapters and are left out rather than silently misread
PASSED_PARAMS = ("max_new_tokens", "temperature", "top_k")


def manifest():
    """Entry point payload for lmms-eval's model registry (group `lmms_eval.models`)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.HarnessLMMS", aliases=ALIASES)


def _batch_size(value) -> int:
    # "auto" asks lmms-eval models to probe memory; our adapters batch internally, so take the harness default
    if value is None or str(value).startswith("auto"):
        return 8
    size = int(value)
    if size < 1:
        raise ValueError(f"{MODEL_ID}: batch_size must be at least 1, got {value!r}")
    return size


class HarnessLMMS(LMMSBase):
    """lmms-eval `simple` model wrapping a harness UnifiedModel's `understand` (images + text -> text)."""

    is_simple = True

    def __init__(self, checkpoint: str | None = None, pretrained: str | None = None, batch_size=1,
                 max_batch_size=None, device: str | None = None, include: str | None = None, **model_args):
        super().__init__()
        from harness import registry
        from harness.models import DEFAULT_MODEL, resolve_model

        if include:
            registry.include([p for p in str(include).split(os.pathsep) if p])
        # lmms-eval users write pretrained=...; both name the same thing
        self.spec = str(checkpoint or pretrained or DEFAULT_MODEL)
        self.batch_size_per_call = _batch_size(batch_size)
        dist = from_env()
        self._rank, self._world_size = dist.rank, dist.world
        if device is None and self._world_size > 1:
            device = rank_gpu(dist.local_rank)
        if device is not None:
            model_args["device"] = str(device)
        self.model = resolve_model(self.spec, model_args)
        self.failed = 0
        # a batch that runs out of memory is halved as the engine halves it; other errors stop lmms-eval, which
        # would otherwise score every failed request as a wrong answer and report the zeros as a result
        self.calls = BatchCaller(f"rank {self._rank}: " if self._world_size > 1 else "", isolate=False)

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_call

    @property
    def device(self):
        # lmms-eval moves small tensors here for cross-rank gathers
        import torch

        dev = getattr(self.model, "device", None)
        dev = dev() if callable(dev) else dev
        return torch.device(dev or "cpu")

    # ----------------------------------------------------------------------------------------------- requests
    def _visuals(self, doc_to_visual, task: str, split: str, doc_id) -> tuple[Image, ...]:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else None
        flat = []
        for v in visuals or []:
            flat.extend(v if isinstance(v, (list, tuple)) else [v])
        out = []
        for v in flat:
            if isinstance(v, str) and Path(v).suffix.lower() in IMAGE_SUFFIXES:
                out.append(Image(path=v))
            elif isinstance(v, (str, dict)):
                # videos are paths with other suffixes, audio comes as dicts: UnifiedModel.understand takes images
                raise ValueError(f"{MODEL_ID}: task {task} gives a non-image input ({str(v)[:80]}); "
                                 "the wrapped model answers questions about images only")
            else:
                out.append(Image.coerce(v))
        return tuple(out)

    def _request(self, instance) -> tuple[Request, list[str]]:
        context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
        gen = dict(gen_kwargs or {})
        until = gen.pop("until", None)
        until = [until] if isinstance(until, str) else list(until or [])
        params = {k: gen[k] for k in PASSED_PARAMS if gen.get(k) is not None}
        sample = bool(gen.get("do_sample", False)) or float(gen.get("temperature") or 0) > 0
        if sample:
            params["do_sample"] = True
        else:
            params.pop("temperature", None)   # greedy: a temperature would only change the cache key
        # the seed depends on the document, never on the batch position, so sampled answers are reproducible
        seed = int(hashlib.sha256(f"{task}|{split}|{doc_id}|{instance.idx}".encode()).hexdigest()[:8], 16)
        req = Request(MODEL, "understand", text=context, images=self._visuals(doc_to_visual, task, split, doc_id),
                      params=params, task=task, doc_id=str(doc_id), seed=seed)
        return req, [u for u in until if u]

    def generate_until(self, requests) -> list[str]:
        # group by generation settings, keep lmms-eval's order within a group, cut into batches of the requested
        # size: the wrapped model sees exactly batch_size requests per call (the last call of a group may be smaller)
        groups: dict[str, list[int]] = {}
        for i, inst in enumerate(requests):
            groups.setdefault(json.dumps(inst.args[1] or {}, sort_keys=True, default=str), []).append(i)
        out: list[str | None] = [None] * len(requests)
        size = self.batch_size_per_call
        bar = tqdm(total=len(requests), disable=self.rank != 0, desc=f"{MODEL_ID} responding")
        for indices in groups.values():
            for start in range(0, len(indices), size):
                chunk = indices[start:start + size]
                built = [self._request(requests[i]) for i in chunk]
                responses = self.calls.call("model.understand", self.model.understand, [req for req, _ in built],
                                            f"{self.spec}.understand")
                for i, (req, stops), resp in zip(chunk, built, responses):
                    out[i] = self._text(resp, req, stops)
                bar.update(len(chunk))
        bar.close()
        if self.failed:
            eval_logger.warning(f"{MODEL_ID}: {self.failed} requests failed and were answered with an empty "
                                "string (they count as wrong in lmms-eval's scores)")
        return out

    def _text(self, resp, req: Request, stops: list[str]) -> str:
        if not resp.ok or resp.text is None:
            # lmms-eval needs a string per request; an empty one scores as wrong, and the count is logged
            self.failed += 1
            eval_logger.warning(f"{MODEL_ID}: {req.task} doc {req.doc_id} failed: {resp.error}")
            return ""
        text = resp.text
        for stop in stops:
            text = text.split(stop, 1)[0]
        return text

    def loglikelihood(self, requests):
        raise NotImplementedError(
            f"{MODEL_ID} does not compute log-likelihoods: the harness model interface answers with generated "
            "text only (UnifiedModel.understand), so multiple_choice / loglikelihood tasks cannot run; use a "
            "generate_until variant of the task")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(f"{MODEL_ID} answers single-round generate_until requests only")

    def clean(self):
        # lmms-eval calls this before scoring (e.g. before loading a local judge): free the wrapped weights too
        unload = getattr(self.model, "unload", None)
        if callable(unload):
            unload()
        super().clean()
