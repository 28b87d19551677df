"""Model adapters and `--model` resolution.

`--model` accepts a registered name, a checkpoint folder written by the trainer (with `harness.json`), a local
Hugging Face folder (with `config.json`), or a Hugging Face hub id.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from harness.errors import HarnessError
from harness.options import check_call
from harness.registry import MODELS, unknown_name_message
from harness.runner import UnifiedModel
from harness.store import slug

DEFAULT_MODEL = "tiny-janus"

#: transformers `model_type` -> adapter name, for local folders and hub ids
ADAPTER_FOR_MODEL_TYPE = {"janus": "janus", "emu3": "emu3"}

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

MODELS.add("tiny-janus", "harness.models.janus:JanusAdapter",
           "bundled tiny Janus pretrained on the embedded shapes world (no download)")
MODELS.add("janus", "harness.models.janus:JanusAdapter",
           "Janus / Janus-Pro from a hub id or folder: --model-args '{\"model\": \"org/name or path\"}'")
MODELS.add("janus-pro-1b", "harness.models.janus:JanusAdapter", "deepseek-community/Janus-Pro-1B (Hugging Face)")
MODELS.add("janus-pro-7b", "harness.models.janus:JanusAdapter", "deepseek-community/Janus-Pro-7B (Hugging Face)")
MODELS.add("emu3", "harness.models.emu3:Emu3Adapter",
           "Emu3 pair: BAAI/Emu3-Chat-hf answers, BAAI/Emu3-Gen-hf draws (--model-args '{\"chat\": ..., \"gen\": ...}' "
           "for other copies)")
MODELS.add("emu3-chat", "harness.models.emu3:Emu3Adapter", "BAAI/Emu3-Chat-hf alone (understanding only)")
MODELS.add("emu3-gen", "harness.models.emu3:Emu3Adapter", "BAAI/Emu3-Gen-hf alone (image generation only)")


def _instantiate(factory, spec: str, args: dict) -> UnifiedModel:
    check_call("--model-args", spec, factory, args)      # names, types and the device, before any work
    try:
        model = factory(spec=spec, **args)
    except TypeError as e:
        raise HarnessError(f"--model-args for {spec}: {e}") from None
    return model


def resolve_model(spec: str | None = None, args: dict | None = None) -> UnifiedModel:
    spec = spec or DEFAULT_MODEL
    args = dict(args or {})
    if spec in MODELS:
        return _instantiate(MODELS.load(spec), spec, args)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HarnessError(f"--model {spec}: a file, not a model folder; give a folder with harness.json "
                               "(a trainer checkpoint) or config.json and safetensors weights")
        if (path / "harness.json").exists():
            try:
                meta = json.loads((path / "harness.json").read_text())
                adapter = meta["adapter"]
            except (json.JSONDecodeError, KeyError) as e:
                raise HarnessError(f"{path / 'harness.json'}: unreadable or missing the 'adapter' field ({e})") \
                    from None
            return _instantiate(MODELS.load(adapter), str(path), args)
        if (path / "config.json").exists():
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
            adapter = ADAPTER_FOR_MODEL_TYPE.get(model_type)
            if adapter is None:
                raise HarnessError(f"--model {spec}: model_type {model_type!r} has no adapter "
                                   f"(supported: {', '.join(ADAPTER_FOR_MODEL_TYPE)})")
            return _instantiate(MODELS.load(adapter), str(path), args)
        raise HarnessError(f"--model {spec}: folder has no loadable weights (expected harness.json, or "
                           "config.json with *.safetensors)")
    if HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return _instantiate(MODELS.load(_hub_adapter(spec, args.get("revision"))), spec, args)
    raise HarnessError(unknown_name_message("model", spec, MODELS.names()))


def _hub_adapter(hub_id: str, revision: str | None) -> str:
    """The adapter for a hub id: from the model_type of its cached snapshot (Janus when it is not cached: the
    adapter then says which files to fetch)."""
    from harness.hub import cached_commit, snapshot_dir

    snap = snapshot_dir(hub_id, cached_commit(hub_id, revision))
    config = snap / "config.json" if snap is not None else None
    if config is not None and config.is_file():
        try:
            return ADAPTER_FOR_MODEL_TYPE.get(json.loads(config.read_text()).get("model_type"), "janus")
        except json.JSONDecodeError:
            pass
    return "janus"


def model_slug(model: UnifiedModel) -> str:
    spec = str(getattr(model, "spec", model.name))
    path = Path(spec)
    if path.exists():
        return slug(path.resolve().name)
    return slug(spec)
