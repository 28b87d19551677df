"""Secrets out of what we store or print: values of secret-named fields and token-shaped strings, in nested JSON-like
data and in "k=v,k=v" argument strings (lmms-eval's --model_args), replaced before anything else reads them; and a
known key (the judge's) out of the error text a server echoes."""
from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
# whole field names (case-insensitive, '-' read as '_'): `max_new_tokens` or `tokenizer` are not secrets
SECRET_FIELD = re.compile(r"(?:^|_)(?:token|api_?key|secret(?:_key)?|password|passwd|authorization|credentials?|"
                          r"access_key)$")
SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}|\bsk-[A-Za-z0-9_\-]{16,}|(?i:\bbearer\s+)[A-Za-z0-9._\-]{16,}")
# flags, not secrets: `use_auth_token=True` says to use the cached login
FLAG_WORDS = {"", "true", "false", "none", "null", "0", "1"}


def secret_field(name: str) -> bool:
    return bool(SECRET_FIELD.search(str(name).strip().lower().replace("-", "_")))


def redact_text(text: str) -> str:
    """Token-shaped substrings replaced; "k=v,k=v" values of secret fields too."""
    if "=" in text:
        parts = []
        for part in text.split(","):
            key, sep, value = part.partition("=")
            hide = sep and secret_field(key) and value.strip().lower() not in FLAG_WORDS
            parts.append(f"{key}={REDACTED}" if hide else part)
        text = ",".join(parts)
    return SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of `value` (dicts, lists, strings, scalars) with secrets replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {k: (REDACTED if secret_field(k) and isinstance(v, str) and v.strip().lower() not in FLAG_WORDS
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_key(text: str, key: str, cut: int | None = None) -> str:
    """`text` without `key`, then cut to `cut` characters: redacting first, so a key straddling the cut can never
    leave its first characters behind. A text that was itself cut short (a capped read) may end in the start of
    the key; that tail goes too."""
    if not key:
        return text if cut is None else text[:cut]
    text = text.replace(key, REDACTED)
    for n in range(min(len(key) - 1, len(text)), 3, -1):    # a key prefix of 4+ characters ending the text
        if text.endswith(key[:n]):
            text = text[:-n] + REDACTED
            break
    return text if cut is None else text[:cut]
