"""Argument values checked before any work: `--model-args`, `--scorer-args` and `--task-args` against what their
receivers declare, `--device` against this machine, and names that become folders (`--run-name`) or labels (`--tag`).

A run that starts with a value its receiver cannot use fails on every request instead (a `guidance_scale` of "high",
a `cuda:7` on a one-GPU machine) and looks finished; a value its receiver silently misreads (a task's `"judge":
"maybe"` read as false) is worse. So each receiver declares its options' types once, and this module refuses a
wrong value in one line naming the flag, the option and what it takes.

Types: "bool", "int", "number", "str", "size" (an int, [w, h] or "WxH"), "object", "list"; a trailing "?" also
allows null; a tuple lists the allowed values. Model adapters and scorers declare theirs as constructor
annotations (`guidance_scale: float | None`), read here with `inspect`; tasks as `Task.option_types`. Numbers and
booleans given as strings are accepted where they parse, because lmms-eval hands model arguments over as text.
"""
from __future__ import annotations

import difflib
import json
import inspect
import math
import re
from pathlib import Path

from harness.errors import HarnessError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
_ANNOTATIONS = {"int": "int", "float": "number", "str": "str", "bool": "bool", "dict": "object", "list": "list"}
_TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def as_bool(value) -> bool:
    """A boolean option's value (already checked by check_value)."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def _is_number(value, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and not integer


def _is_size(value) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and all(_is_number(v, True) and int(v) > 0 for v in value)
    if isinstance(value, str):
        parts = value.lower().replace("x", " ").split()
        return 1 <= len(parts) <= 2 and all(p.isdigit() and int(p) > 0 for p in parts)
    return _is_number(value, True) and int(value) > 0


_CHECKS = {
    "bool": (lambda v: isinstance(v, bool) or v in (0, 1) or (isinstance(v, str) and v.strip().lower() in
                                                            TRUE_WORDS + FALSE_WORDS), "true or false"),
    "int": (lambda v: _is_number(v, True), "a whole number"),
    "number": (lambda v: _is_number(v, False), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "size": (_is_size, "an image size (an integer, [width, height] or \"WxH\")"),
    "object": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, (list, tuple)), "a JSON list"),
}


def check_value(where: str, value, kind) -> None:
    """Raise one line naming `where` when `value` is not of the declared kind."""
    if isinstance(kind, tuple):
        if value not in kind:
            raise HarnessError(f"{where}: {value!r} is not one of {', '.join(map(repr, kind))}")
        return
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and nullable:
        return
    ok, wanted = _CHECKS[kind]
    if value is None or not ok(value):
        raise HarnessError(f"{where}: expected {wanted}{' or null' if nullable else ''}, got {value!r}")


def annotation_kind(annotation) -> str | None:
    """The declared kind of a constructor parameter from its (string) annotation; None when not one we check."""
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional["):-1] + "|None"
    while "[" in text:                      # dict[str, int] -> dict: only the outer type is checked
        text = re.sub(r"\[[^\[\]]*\]", "", text)
    parts = [p for p in text.split("|") if p]
    nullable = "None" in parts
    kinds = {_ANNOTATIONS.get(p) for p in parts if p != "None"}
    if len(kinds) != 1 or None in kinds:
        return None
    return kinds.pop() + ("?" if nullable else "")


def check_call(flag: str, owner: str, factory, args: dict, skip: tuple[str, ...] = ("spec",)) -> None:
    """Check `args` against the parameters of `factory` (a class or function) before calling it."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for name, value in args.items():
        if name not in named:
            if open_ended:
                continue
            close = difflib.get_close_matches(name, list(named), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (it takes: {', '.join(named) or 'none'})"
            raise HarnessError(f"{flag} for {owner}: unknown argument {name!r}{hint}")
        kind = annotation_kind(named[name].annotation)
        if kind is not None:
            check_value(f"{flag} for {owner}: {name}", value, kind)
        if name == "device" and isinstance(value, str):
            check_device(value, f"{flag} for {owner}: device")


def check_scorer_args(scorer_args: dict, flag: str = "--scorer-args") -> None:
    """Every key a registered scorer (did-you-mean otherwise), every value an object its constructor accepts."""
    from harness import registry

    for name, value in scorer_args.items():
        if name not in registry.SCORERS:
            raise HarnessError(f"{flag}: " + registry.unknown_name_message("scorer", name, registry.SCORERS.names()))
        if not isinstance(value, dict):
            raise HarnessError(f"{flag}: the value for {name!r} must be an object of arguments, e.g. "
                               f"'{{\"{name}\": {{\"batch_size\": 8}}}}', got {value!r}")
        check_call(flag, name, registry.SCORERS.load(name), value, skip=())


def check_device(spec: str, flag: str = "--device") -> None:
    """Refuse a device this machine does not have (a run on it would fail every request)."""
    text = str(spec).strip().lower()
    if text in ("", "auto", "cpu"):
        return
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise HarnessError(f"{flag} {spec!r}: not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HarnessError(f"{flag} {spec}: no CUDA GPU is available on this machine "
                               "(torch.cuda.is_available() is false); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise HarnessError(f"{flag} {spec}: this machine has {count} GPU{'s' if count != 1 else ''} "
                               f"(cuda:0 to cuda:{count - 1})")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise HarnessError(f"{flag} {spec}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise HarnessError(f"{flag} {spec}: device type {device.type!r} is not supported; use cpu, cuda or mps")


def check_folder_name(what: str, name: str) -> str:
    """A name that becomes one folder under the output folder: never a path that leaves it."""
    bad = (not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name
           or Path(name).is_absolute() or any(ord(c) < 32 for c in name) or len(name) > 200)
    if bad:
        raise HarnessError(f"{what} {name!r}: must be a plain folder name (no '/', '\\', '..', absolute path or "
                           "control character), e.g. my-run")
    return name


def check_tags(tags: dict) -> None:
    """--tag KEY=VALUE: keys are plain words (they become leaderboard columns), values single-line."""
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.match(key):
            raise HarnessError(f"--tag {key!r}: the key must be letters, digits, '_', '.' or '-' "
                               "(starting with a letter or digit)")
        if isinstance(value, str) and any(ord(c) < 32 for c in value):
            raise HarnessError(f"--tag {key}: the value must be one line of text")
        if isinstance(value, (dict, list)):     # structured tags come from the Python API (the trainer's
            try:                                # hyper_parameters); they must survive the manifest's JSON
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise HarnessError(f"--tag {key}: the value must be JSON data ({e})") from None
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            raise HarnessError(f"--tag {key}: the value must be text or a number, got {type(value).__name__}")


def check_rate(flag: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise HarnessError(f"{flag} {value}: give a share between 0 and 1 (e.g. 0.2; 1 never stops a run)")
