"""Vision-language judge over an OpenAI-compatible chat API (GPT-4o for WISE, or a vLLM server).

Kind `judge`. Request: `text` is the user prompt text; `images` are attached after it, each as a base64 PNG data
URL (the layout of WISE's gpt_eval.py); params may hold "system" (system prompt), "max_tokens" and
"temperature" (defaults: the constructor's). Response: values {"text": answer, "model": the snapshot the server
says answered, "finish_reason"}, or a failure carrying the client's error. The API key is read from the
environment variable named by `api_key_env` at request time; it is never stored, fingerprinted or reported
(JudgeClient scrubs it from everything it returns).

Fingerprint: base URL host, model snapshot, temperature and max_tokens defaults, extra_body. Pin a dated snapshot
(e.g. gpt-4o-2024-05-13), not an alias, or cached judgements may mix models.
"""
from __future__ import annotations

import base64
import copy
import io
import urllib.parse

from harness.runner import Scorer, fingerprint_of
from harness.scorers.judge_client import JudgeClient
from harness.types import Image, Request, Response

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_bytes(image: Image) -> bytes:
    """The image as PNG: a PNG file's own bytes when it is one (what the official scripts send), else encoded."""
    if image.path is not None and image.path.is_file():
        with open(image.path, "rb") as f:
            data = f.read()
        if data.startswith(PNG_MAGIC):
            return data
    buf = io.BytesIO()
    image.pil().save(buf, format="PNG")
    return buf.getvalue()


def build_messages(req: Request) -> list[dict]:
    """OpenAI chat messages: optional system turn, then one user turn with the text and the images."""
    params = req.params or {}
    messages = []
    if params.get("system"):
        messages.append({"role": "system", "content": [{"type": "text", "text": str(params["system"])}]})
    content = []
    if req.text:
        content.append({"type": "text", "text": req.text})
    for im in req.images:
        url = "data:image/png;base64," + base64.b64encode(png_bytes(im)).decode("ascii")
        content.append({"type": "image_url", "image_url": {"url": url}})
    messages.append({"role": "user", "content": content})
    return messages


class JudgeScorer(Scorer):
    name = "judge"
    version = "1"
    kinds = ("judge",)

    def __init__(self, base_url: str = "https://api.openai.com/v1", model: str = "gpt-4o-2024-05-13",
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0, max_concurrency: int = 8,
                 max_retries: int = 5, temperature: float = 0.0, max_tokens: int = 2000,
                 extra_body: dict | None = None, batch_size: int | None = None):
        self.client = JudgeClient(base_url, model, api_key_env=api_key_env, temperature=float(temperature),
                                  max_tokens=int(max_tokens), extra_body=extra_body, timeout_s=float(timeout),
                                  max_retries=int(max_retries), max_concurrency=int(max_concurrency))
        # requests per executor batch: enough to keep every concurrent slot busy
        self.batch_size = int(batch_size) if batch_size else max(8, 2 * int(max_concurrency))

    def _host(self) -> str:
        parts = urllib.parse.urlsplit(self.client.base_url)
        return parts.hostname + (f":{parts.port}" if parts.port else "")

    def fingerprint(self) -> str:
        c = self.client
        extra = f"/{fingerprint_of(c.extra_body)}" if c.extra_body else ""
        return f"{self.name}/v{self.version}/{self._host()}/{c.model}/t={c.temperature:g}/max={c.max_tokens}{extra}"

    def describe(self) -> dict:
        c = self.client
        return {"name": self.name, "fingerprint": self.fingerprint(), "host": self._host(), "model": c.model,
                "temperature": c.temperature, "max_tokens": c.max_tokens, "extra_body": c.extra_body,
                "api_key_env": c.api_key_env}

    def _client_for(self, temperature, max_tokens) -> JudgeClient:
        if temperature == self.client.temperature and max_tokens == self.client.max_tokens:
            return self.client
        client = copy.copy(self.client)  # same settings and jitter source; only the two numbers differ
        client.temperature, client.max_tokens = temperature, max_tokens
        return client

    def judge(self, requests: list[Request]) -> list[Response]:
        out: list = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, list]]] = {}
        for i, req in enumerate(requests):
            params = req.params or {}
            try:
                if not req.text and not req.images:
                    raise ValueError("a judge request needs text or images")
                settings = (float(params.get("temperature", self.client.temperature)),
                            int(params.get("max_tokens", self.client.max_tokens)))
                messages = build_messages(req)
            except (ValueError, TypeError, OSError) as e:
                out[i] = Response.failure(f"judge request: {type(e).__name__}: {e}")
                continue
            groups.setdefault(settings, []).append((i, messages))
        for (temperature, max_tokens), items in groups.items():
            results = self._client_for(temperature, max_tokens).chat_many([m for _, m in items])
            for (i, _), res in zip(items, results):
                meta = {"attempts": res.attempts, "latency_s": round(res.latency_s, 3), "usage": dict(res.usage)}
                if not res.ok:
                    resp = Response.failure(f"judge: {res.error}")
                else:
                    values = {"text": res.text, "model": res.model, "finish_reason": res.finish_reason}
                    resp = Response(text=res.text, values={k: v for k, v in values.items() if v is not None})
                resp.meta.update(meta)
                out[i] = resp
        return out
