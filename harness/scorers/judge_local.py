"""Vision-language judge run locally with transformers (e.g. Qwen2.5-VL), greedy decoding.

Same request/response contract as the API judge (harness/scorers/judge.py): `text` is the user prompt, images
follow it in the user turn, params "system" and "max_tokens"; values {"text": answer}. The model's own chat
template renders the messages. Decoding is greedy (the official judges run at temperature 0), so a request asking
for a positive temperature is answered with a failure rather than silently decoded another way.

Default weights Qwen/Qwen2.5-VL-7B-Instruct (TorchUMM substitutes Qwen2.5-VL-72B-Instruct for GPT-4o in WISE and
reports systematically lower scores than GPT-4o; record which judge produced a number).
"""
from __future__ import annotations

from harness.scorers.base import ModelScorer
from harness.types import Request, Response


def hf_messages(req: Request) -> list[dict]:
    """Chat-template messages: optional system turn, then the text and one image placeholder per image."""
    params = req.params or {}
    messages = []
    if params.get("system"):
        messages.append({"role": "system", "content": [{"type": "text", "text": str(params["system"])}]})
    content = [{"type": "text", "text": req.text}] if req.text else []
    content += [{"type": "image"} for _ in req.images]
    messages.append({"role": "user", "content": content})
    return messages


class LocalJudgeScorer(ModelScorer):
    name = "judge_local"
    kinds = ("judge",)
    default_weights = "Qwen/Qwen2.5-VL-7B-Instruct"
    gpu_dtype = "bfloat16"
    preprocessing = "checkpoint processor and chat template (system, user: text then images); greedy decoding"

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 4, max_tokens: int = 2000):
        super().__init__(weights, revision, device, dtype, batch_size)
        self.max_tokens = int(max_tokens)

    def settings(self) -> dict:
        return {**super().settings(), "max_tokens": self.max_tokens, "decoding": "greedy"}

    def _load(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self._m_processor = self.from_pretrained(AutoProcessor)
        self._m_processor.tokenizer.padding_side = "left"  # batched generation continues from the right edge
        self._m_model = self.from_pretrained(AutoModelForImageTextToText, dtype=self.dtype).to(self.device).eval()

    def judge(self, requests: list[Request]) -> list[Response]:
        self.ensure_loaded()
        out: list = [None] * len(requests)
        groups: dict[int, list[int]] = {}
        for i, req in enumerate(requests):
            params = req.params or {}
            if float(params.get("temperature", 0) or 0) > 0:
                out[i] = Response.failure("judge_local decodes greedily; it does not sample at temperature > 0")
            elif not req.text and not req.images:
                out[i] = Response.failure("a judge request needs text or images")
            else:
                groups.setdefault(int(params.get("max_tokens", self.max_tokens)), []).append(i)
        for max_tokens, idxs in groups.items():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start:start + self.batch_size]
                for i, text in zip(chunk, self._generate([requests[i] for i in chunk], max_tokens)):
                    out[i] = Response(text=text, values={"text": text, "model": self.weights})
        return out

    def _generate(self, requests: list[Request], max_tokens: int) -> list[str]:
        import torch

        proc = self._m_processor
        prompts = [proc.apply_chat_template(hf_messages(r), tokenize=False, add_generation_prompt=True)
                   for r in requests]
        images = [im.pil() for r in requests for im in r.images]
        inputs = proc(text=prompts, images=images or None, padding=True, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            generated = self._m_model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
        new = generated[:, inputs["input_ids"].shape[1]:]
        return list(proc.batch_decode(new, skip_special_tokens=True))
