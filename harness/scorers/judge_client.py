"""OpenAI-compatible chat-completions client for judge models (OpenAI, vLLM, any compatible server).

Standard library only. Batches never raise: every request yields a `Result` holding either text or an
error string. The API key is read from the environment at request time and never stored on the client;
everything that leaves this module (errors, results, reprs, log lines) is scrubbed of it.
"""
from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from harness.redaction import redact_key

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
_BODY_SNIPPET = 300
_BODY_READ = 65536


@dataclass(frozen=True)
class Result:
    text: Optional[str] = None
    error: Optional[str] = None
    attempts: int = 0
    status: Optional[int] = None
    finish_reason: Optional[str] = None
    model: Optional[str] = None  # the snapshot the server says answered
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class _Retryable(Exception):
    def __init__(self, message: str, status: Optional[int] = None, retry_after: Optional[float] = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class _Fatal(Exception):
    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message_text(content: Any) -> Optional[str]:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers return content parts
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(parts) if parts else None
    return None


class JudgeClient:
    """Chat-completions client with retries, backoff and a concurrency limit.

    base_url: e.g. "https://api.openai.com/v1" or "http://localhost:8000/v1" (vLLM).
    model: the exact snapshot name (e.g. "gpt-4o-2024-05-13"); recorded in `fingerprint()`.
    api_key_env: NAME of the environment variable holding the key; unset/empty sends no Authorization
    header, which is fine for local servers.
    extra_body: merged into every request body (e.g. {"chat_template_kwargs": {"enable_thinking": False}}).
    """

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float = 0.0, max_tokens: int = 512,
                 extra_body: Optional[Mapping[str, Any]] = None, timeout_s: float = 120.0,
                 max_retries: int = 5, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 max_concurrency: int = 8):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http(s) URL such as http://localhost:8000/v1")
        if parts.username or parts.password:
            raise ValueError("base_url must not contain credentials; use api_key_env")
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_concurrency = max_concurrency
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"JudgeClient(base_url={self.base_url!r}, model={self.model!r}, "
                f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})")

    @property
    def endpoint(self) -> str:
        return self.base_url + "/chat/completions"

    def fingerprint(self, prompt_template: str = "") -> dict[str, str]:
        """What identifies this judge in results: server host, model snapshot, sha256 of the prompt template."""
        parts = urllib.parse.urlsplit(self.base_url)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return {"host": host, "model": self.model,
                "prompt_sha256": hashlib.sha256(prompt_template.encode("utf-8")).hexdigest()}

    def _key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    @staticmethod
    def _scrub(text: str, key: str) -> str:
        return redact_key(text, key)

    def chat(self, messages: Sequence[Mapping[str, Any]]) -> Result:
        """One request with retries; failures come back as Result.error."""
        key = self._key()
        start = time.monotonic()
        attempts, status, last_error = 0, None, "no attempt made"
        for attempt in range(self.max_retries + 1):
            attempts = attempt + 1
            try:
                result = self._request(messages, key)
                # Scrub even the answer: a misbehaving server may echo request headers anywhere.
                text = self._scrub(result.text, key)
                model = self._scrub(result.model, key) if isinstance(result.model, str) else None
                usage = {k: v for k, v in result.usage.items() if isinstance(v, (int, float))}
                finish = self._scrub(result.finish_reason, key) if isinstance(result.finish_reason, str) else None
                return Result(text, None, attempts, result.status, finish, model, usage, time.monotonic() - start)
            except _Fatal as exc:
                return Result(None, self._scrub(str(exc), key), attempts, exc.status,
                              latency_s=time.monotonic() - start)
            except _Retryable as exc:
                status, last_error = exc.status, self._scrub(str(exc), key)
                if attempt == self.max_retries:
                    break
                delay = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
                delay = min(self.max_backoff_s, delay * (0.5 + self._uniform()))  # jitter spreads threads out
                if exc.retry_after is not None:  # honoured, up to max_backoff_s
                    delay = min(exc.retry_after, self.max_backoff_s)
                log.warning("judge request failed (%s); retry %d/%d in %.2fs",
                            last_error, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
        return Result(None, f"gave up after {attempts} attempts: {last_error}", attempts, status,
                      latency_s=time.monotonic() - start)

    def chat_many(self, batch: Sequence[Sequence[Mapping[str, Any]]]) -> list[Result]:
        """Results in input order; at most `max_concurrency` requests in flight."""
        batch = list(batch)
        if not batch:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batch))) as pool:
            return list(pool.map(self._safe_chat, batch))

    def _safe_chat(self, messages) -> Result:
        try:
            return self.chat(messages)
        except Exception as exc:  # a bug here must not take down the batch
            return Result(None, self._scrub(f"client error: {type(exc).__name__}: {exc}", self._key()))

    def _uniform(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def _request(self, messages, key: str) -> Result:
        body = {"model": self.model, "messages": list(messages), "temperature": self.temperature,
                "max_tokens": self.max_tokens, **self.extra_body}
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            snippet = self._snippet(exc, key)
            message = f"HTTP {exc.code} from {self.endpoint}: {snippet}"
            if exc.code in RETRY_STATUS:
                raise _Retryable(message, exc.code, _retry_after(exc.headers.get("Retry-After"))) from None
            raise _Fatal(message, exc.code) from None
        except (socket.timeout, TimeoutError):
            raise _Retryable(f"timed out after {self.timeout_s:g}s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise _Retryable(f"timed out after {self.timeout_s:g}s") from None
            raise _Retryable(f"connection error: {exc.reason}") from None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from None
        return self._parse(status, raw)

    @staticmethod
    def _snippet(exc: urllib.error.HTTPError, key: str = "") -> str:
        """The useful part of an error body, one line, redacted before it is cut (servers echo headers)."""
        try:
            raw = redact_key(exc.read(_BODY_READ).decode("utf-8", "replace"), key)
        except Exception:
            return "(no body)"
        try:  # OpenAI-style {"error": {"message": ...}} is the useful part
            err = json.loads(raw).get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                raw = err["message"]
            elif isinstance(err, str):
                raw = err
        except (ValueError, AttributeError):
            pass
        return redact_key(" ".join(raw.split()), key, _BODY_SNIPPET) or "(empty body)"

    def _parse(self, status: int, raw: bytes) -> Result:
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Fatal(f"malformed response from {self.endpoint}: not JSON", status) from None
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Fatal(f"malformed response from {self.endpoint}: no choices", status)
        message = choices[0].get("message")
        text = _message_text(message.get("content")) if isinstance(message, dict) else None
        if text is None:
            raise _Fatal(f"malformed response from {self.endpoint}: no message content", status)
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        return Result(text, None, 0, status, choices[0].get("finish_reason"), payload.get("model"), usage)
