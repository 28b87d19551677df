"""Training state (optimiser moments, schedules, counters, buffers) stored without pickle: one safetensors file
whose tensors are the state's tensors and whose metadata holds everything else as JSON.

A pickle (`torch.save`, and `torch.load` without `weights_only=True`) runs whatever code the file names while it
loads, so a crafted checkpoint folder ran code on `--resume`. A safetensors file holds only tensors and a JSON
header, and loading it runs nothing. The trainer (unigame/checkpoint.py) and the tiny-model factory
(tinyfactory/workers.py) save their state here; `load_legacy` reads state files written before with
`weights_only=True` (tensors and plain containers only) and refuses anything else.

Round trips are exact: tensors keep dtype and bits, floats go through JSON's repr (exact for Python floats, NaN and
infinities included), ints, bools, None and strings are kept, tuples stay tuples and dict keys keep their type.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

_MARKERS = ("__tensor__", "__tuple__", "__items__")
_META_KEY = "state"


def _encode(obj, tensors: dict) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        # a copy of its own: safetensors refuses tensors sharing storage (tied weights, views)
        tensors[name] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _MARKERS for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a state file (tensors, numbers, strings, lists, "
                    "tuples and dicts only)")


def _decode(obj, tensors: dict) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__tensor__"}:
        return tensors[obj["__tensor__"]]
    if set(obj) == {"__tuple__"}:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if set(obj) == {"__items__"}:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def dumps(obj) -> bytes:
    """The state as safetensors bytes."""
    from safetensors.torch import save

    tensors: dict = {}
    tree = _encode(obj, tensors)
    return save(tensors, metadata={_META_KEY: json.dumps(tree, allow_nan=True)})


def save_state(obj, path: Path) -> None:
    """Write the state atomically (temporary file + rename)."""
    from harness.store import write_bytes

    write_bytes(Path(path), dumps(obj))


def load_state(path: Path, what: str = "state file"):
    """Read a state written by save_state; a file that is not one is refused in one line, and nothing runs."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        tree = json.loads(meta[_META_KEY])
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such {what}") from None
    except Exception as e:   # safetensors raises its own error types for damaged headers
        raise HarnessError(f"{path}: not a readable {what} ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                           "it is damaged or was not written by this harness") from None
    return _decode(tree, tensors)


def load_legacy(path: Path, what: str = "state file"):
    """A state file written with torch.save by an earlier version, read with weights_only=True: tensors and plain
    containers load, anything that would run code while unpickling is refused."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as e:
        first = " ".join(str(e).split())[:200]
        raise HarnessError(f"{path}: refused to load this {what}: it is not plain tensors and containers and "
                           f"loading it could run code ({type(e).__name__}: {first})") from None
