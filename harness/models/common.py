"""What every transformers-backed adapter does the same way: device and dtype choice, `--model-args` parsing,
batching requests by their decoding parameters, and applying a trainer checkpoint's PEFT adapter on load."""
from __future__ import annotations

from harness.errors import HarnessError
from harness.options import as_bool
from harness.runner import UnifiedModel
from harness.types import Request

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def pretraining_summary(source) -> dict | None:
    """How a bundled tiny model was pretrained (its folder's training.json, also under a trainer checkpoint that
    post-trains it), for `describe()`; None for other models."""
    import json

    training = (source.base or source).path / "training.json"
    if not training.is_file():
        return None
    meta = json.loads(training.read_text())
    return {k: meta.get(k) for k in ("seed", "world_version", "device", "wall_seconds", "steps")}


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


def check_dtype(dtype) -> None:
    if dtype is not None and str(dtype).lower() not in (*DTYPES, "auto"):
        raise HarnessError(f"--model-args dtype {dtype!r}: use one of auto, {', '.join(sorted(set(DTYPES)))}")


def one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]


def loading_failed(spec: str, path, e: Exception) -> HarnessError:
    """Any failure while loading (a truncated safetensors file, a bad config) would fail every request alike: one
    line naming the files instead."""
    return HarnessError(f"loading {spec} from {path} failed: {one_line(e)}")


def apply_adapter(model, adapter_dir, merge: bool, keep: list, spec: str = "the model"):
    """The model with a trainer checkpoint's LoRA applied: merged into the base, or left as LoRA layers inside the
    base modules (their PeftModel wrapper appended to `keep`, which must outlive the model)."""
    if adapter_dir is None:
        return model
    from peft import PeftModel

    try:
        peft = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except Exception as e:
        raise HarnessError(f"loading the adapter of {spec} from {adapter_dir} failed (damaged or incomplete "
                           f"files?): {one_line(e)}") from None
    if merge:
        return peft.merge_and_unload()
    keep.append(peft)
    return peft.get_base_model()


class TransformersAdapter(UnifiedModel):
    """Device/dtype policy (bf16 on a GPU that has it, else fp32), request batching and parameter reading shared
    by the adapters; a subclass sets `device_arg`, `dtype_arg`, `batch_size` and `defaults()`."""

    device_arg: str | None = None
    dtype_arg: str | None = None
    batch_size: int | None = None

    def defaults(self) -> dict:
        raise NotImplementedError

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

    def reduction_context(self) -> dict | None:
        """What else decides the bits of an output on this device: CPU kernels reduce in an order that depends on
        the thread count (part of the fingerprint, so a cache never mixes the two)."""
        if self.device().split(":")[0] != "cpu":
            return None
        import torch

        return {"cpu_threads": torch.get_num_threads()}

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
        """(max_new_tokens, temperature, top_k) of an understanding request: greedy unless do_sample."""
        p, d = r.params or {}, self.defaults()
        sample = as_bool(p.get("do_sample", False))
        temp = float(p.get("temperature", 1.0)) if sample else 0.0
        top_k = p.get("top_k")
        return int(p.get("max_new_tokens") or d["max_new_tokens"]), temp, int(top_k) if top_k else None

    def _image_params(self, r: Request) -> tuple:
        """(guidance, temperature, top_k) of a generation request: its params, else the adapter's defaults."""
        p, d = r.params or {}, self.defaults()
        g = next((p[k] for k in ("guidance_scale", "guidance", "cfg_scale") if p.get(k) is not None),
                 d["guidance_scale"])
        top_k = p.get("top_k", d["top_k"])
        return float(g), float(p.get("temperature", d["temperature"])), int(top_k) if top_k else None
