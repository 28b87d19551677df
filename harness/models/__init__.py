"""Model adapters and `--model` resolution.

`--model` accepts a registered name, a checkpoint folder written by the trainer (with `harness.json`), a local
Hugging Face folder (with `config.json`: Janus, Emu3, or any other image-text-to-text model, which becomes an
understanding-only composite model), a diffusers pipeline folder (with `model_index.json`: a generation-only
composite model), a Hugging Face hub id (dispatched the same way from its cached snapshot), or a composite pair
`UND+GEN`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from harness.errors import HarnessError
from harness.hub import HUB_ID
from harness.options import check_call
from harness.registry import MODELS, unknown_name_message
from harness.runner import UnifiedModel
from harness.store import slug

DEFAULT_MODEL = "tiny-janus"

#: transformers `model_type` -> adapter name, for local folders and hub ids
ADAPTER_FOR_MODEL_TYPE = {"janus": "janus", "emu3": "emu3"}


MODELS.add("tiny-janus", "harness.models.janus:JanusAdapter",
           "bundled tiny Janus pretrained on the embedded shapes world (no download)")
MODELS.add("tiny-emu3", "harness.models.emu3:Emu3Adapter",
           "bundled tiny Emu3 pretrained on the embedded shapes world (no download)")
MODELS.add("janus", "harness.models.janus:JanusAdapter",
           "Janus / Janus-Pro from a hub id or folder: --model-args '{\"model\": \"org/name or path\"}'")
MODELS.add("janus-pro-1b", "harness.models.janus:JanusAdapter", "deepseek-community/Janus-Pro-1B (Hugging Face)")
MODELS.add("janus-pro-7b", "harness.models.janus:JanusAdapter", "deepseek-community/Janus-Pro-7B (Hugging Face)")
MODELS.add("emu3", "harness.models.emu3:Emu3Adapter",
           "Emu3 pair: BAAI/Emu3-Chat-hf answers, BAAI/Emu3-Gen-hf draws (--model-args '{\"chat\": ..., \"gen\": ...}' "
           "for other copies)")
MODELS.add("emu3-chat", "harness.models.emu3:Emu3Adapter", "BAAI/Emu3-Chat-hf alone (understanding only)")
MODELS.add("emu3-gen", "harness.models.emu3:Emu3Adapter", "BAAI/Emu3-Gen-hf alone (image generation only)")
MODELS.add("composite", "harness.models.composite:CompositeAdapter",
           "an image-text-to-text model + a diffusers text-to-image pipeline: --model-args "
           "'{\"understand\": ..., \"generate\": ...}' (short form --model UND+GEN)")
MODELS.add("vlm", "harness.models.composite:CompositeAdapter",
           "any transformers image-text-to-text model, understanding only: --model-args '{\"understand\": ...}'")
MODELS.add("t2i", "harness.models.composite:CompositeAdapter",
           "any diffusers text-to-image pipeline, generation only: --model-args '{\"generate\": ...}'")
COMPOSITE = "composite"


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
    if not path.exists() and "+" in spec:
        from harness.models.composite import is_pair_spec

        if is_pair_spec(spec):
            return _instantiate(MODELS.load(COMPOSITE), spec, args)
    if path.exists():
        # spelled as a path from here on: a folder's bare name may also be a registered name (a download made with
        # `--local-dir janus-pro-7b`), which the adapters would take for that model instead of this folder
        local = str(path) if path.is_absolute() or len(path.parts) > 1 else f".{os.sep}{path}"
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
            return _instantiate(MODELS.load(adapter), local, args)
        if (path / "model_index.json").exists():          # a diffusers pipeline: generation only
            return _instantiate(MODELS.load(COMPOSITE), local, args)
        if (path / "config.json").exists():
            try:
                model_type = json.loads((path / "config.json").read_text()).get("model_type")
            except (json.JSONDecodeError, AttributeError) as e:
                raise HarnessError(f"{path / 'config.json'}: not a JSON object ({e}); the folder's config.json "
                                   "must be a model config") from None
            adapter = ADAPTER_FOR_MODEL_TYPE.get(model_type) or _understanding_only(spec, model_type)
            return _instantiate(MODELS.load(adapter), local, args)
        raise HarnessError(f"--model {spec}: folder has no loadable weights (expected harness.json, "
                           "config.json with *.safetensors, or a diffusers pipeline's model_index.json)")
    if HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return _instantiate(MODELS.load(_hub_adapter(spec, args.get("revision"))), spec, args)
    if spec.startswith((".", "/", "~")) or "/" in spec and not HUB_ID.match(spec):
        raise HarnessError(f"--model {spec}: no such folder ({path.resolve()}), and not a registered model name "
                           "(see `python -m harness models`)")
    raise HarnessError(unknown_name_message("model", spec, MODELS.names()))


def image_text_to_text_types() -> set[str]:
    """The model_types transformers' AutoModelForImageTextToText loads (its name table only; no model code is
    imported)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def _understanding_only(spec: str, model_type) -> str:
    """The composite adapter for a folder of any other image-text-to-text model (understanding only)."""
    if model_type in image_text_to_text_types():
        return COMPOSITE
    raise HarnessError(f"--model {spec}: model_type {model_type!r} has no adapter (supported: "
                       f"{', '.join(ADAPTER_FOR_MODEL_TYPE)}, any image-text-to-text model transformers loads, e.g. "
                       "qwen2_5_vl, and diffusers text-to-image pipelines)")


def _hub_adapter(hub_id: str, revision: str | None) -> str:
    """The adapter for a hub id: from its cached snapshot (a diffusers model_index.json: generation only; else the
    config's model_type); Janus when it is not cached: the adapter then says which files to fetch."""
    from harness.hub import cached_commit, snapshot_dir

    snap = snapshot_dir(hub_id, cached_commit(hub_id, revision))
    if snap is not None and (snap / "model_index.json").is_file():
        return COMPOSITE
    config = snap / "config.json" if snap is not None else None
    if config is not None and config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except json.JSONDecodeError:
            return "janus"
        if model_type in ADAPTER_FOR_MODEL_TYPE:
            return ADAPTER_FOR_MODEL_TYPE[model_type]
        return COMPOSITE if model_type in image_text_to_text_types() else "janus"
    return "janus"


def model_path(model: UnifiedModel) -> str | None:
    """The resolved folder of a model given as a local path (None for hub ids, bundled names and labelled pairs).
    Checkpoints of different runs are often named alike (`.../sft-s0/checkpoints/step000300`): their results share
    a folder named after the last part, and this path is what tells their runs apart."""
    if getattr(model, "label", None):
        return None
    path = Path(str(getattr(model, "spec", model.name)))
    return str(path.resolve()) if path.exists() else None


def model_slug(model: UnifiedModel) -> str:
    """The results folder of a model: its label when it has one (a composite pair names both halves), else its
    --model spelling (a folder by its name)."""
    if getattr(model, "label", None):
        return slug(str(model.label))
    return spec_slug(str(getattr(model, "spec", model.name)))


def spec_slug(spec: str) -> str:
    """A folder name for a --model spelling: a local folder by its resolved name, anything else as spelled."""
    path = Path(spec)
    return slug(path.resolve().name if path.exists() else spec)
