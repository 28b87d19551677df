"""Where a diffusers pipeline's files are, and what identifies them, without loading any weights.

A diffusers pipeline is a folder with `model_index.json` naming its components (unet or transformer, vae, text
encoders, tokenizers, scheduler), each in its own subfolder. It is found as a local folder or as a hub id in the
local Hugging Face cache (nothing is downloaded). Identity, as for transformers folders (checkpoints.py): a hub
snapshot by its commit, a local folder by the hashes of model_index.json and every component's config, tokenizer
and safetensors files (large files hashed once, then cached by path, size and modification time).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.errors import HarnessError, WeightsError
from harness.hub import hub_cache
from harness.models.checkpoints import HUB_ID, Source, file_hash, hub_snapshot

INDEX = "model_index.json"
#: files that decide a component's behaviour besides its weights
CONFIG_SUFFIXES = (".json", ".txt", ".model", ".jinja")


class PipelineSource(Source):
    """A located pipeline; a local folder's identity covers every component's files."""

    def identity(self) -> dict:
        if self.kind == "hub":
            return {"hub": self.hub_id, "commit": self.commit}
        return {"local": pipeline_hash(self.path)}

    def class_name(self) -> str | None:
        """The pipeline class model_index.json names (e.g. StableDiffusion3Pipeline)."""
        return read_index(self.path).get("_class_name")


def is_pipeline(folder: Path) -> bool:
    return (folder / INDEX).is_file()


def read_index(folder: Path) -> dict:
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise HarnessError(f"{folder / INDEX}: unreadable ({e})") from None
    if not isinstance(index, dict):
        raise HarnessError(f"{folder / INDEX}: not a diffusers model index (expected a JSON object)")
    return index


def components(folder: Path) -> list[str]:
    """The component subfolders model_index.json names (entries like "vae": ["diffusers", "AutoencoderKL"])."""
    return sorted(k for k, v in read_index(folder).items()
                  if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0] is not None)


def missing_files(folder: Path) -> list[str]:
    """What a loadable pipeline folder lacks: a component folder, or the safetensors weights of a component that
    has a model config (tokenizers and schedulers have none)."""
    missing = []
    for name in components(folder):
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/")
            continue
        if not (sub / "config.json").is_file():
            continue
        if not any(sub.glob("*.safetensors")):
            has_bin = any(sub.glob("*.bin"))
            missing.append(f"{name}/*.safetensors" + (" (only PyTorch .bin weights are there; this harness loads "
                                                      "safetensors only)" if has_bin else ""))
    return missing


def pipeline_hash(folder: Path) -> str:
    """Hash of model_index.json and each component's config, tokenizer and safetensors files."""
    files = [folder / INDEX]
    for name in components(folder):
        sub = folder / name
        if sub.is_dir():
            files += [f for f in sub.iterdir() if f.is_file()
                      and (f.suffix in CONFIG_SUFFIXES or f.name.endswith(".safetensors"))]
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{f.relative_to(folder).as_posix()}:{file_hash(f)}\n".encode())
    return h.hexdigest()[:32]


def fetch_hint(hub_id: str) -> str:
    return (f"fetch it with `hf download {hub_id}` (into the Hugging Face cache, {hub_cache()}), or pass a local "
            f"diffusers folder ({INDEX} and its component folders)")


def locate_pipeline(spec: str, revision: str | None = None) -> PipelineSource:
    """A diffusers text-to-image pipeline from a local folder or a hub id in the local cache; one line naming what
    is missing otherwise."""
    path = Path(spec).expanduser()
    if path.exists():
        if not is_pipeline(path):
            raise HarnessError(f"generation model {spec}: no {INDEX} there; give a diffusers pipeline folder "
                               "(the one `DiffusionPipeline.save_pretrained` writes) or its hub id")
        missing = missing_files(path)
        if missing:
            raise WeightsError(f"diffusers folder {path} is missing {', '.join(missing)}")
        return PipelineSource(spec, path, "local")
    if not HUB_ID.match(spec):
        raise HarnessError(f"generation model {spec}: not an existing folder or a hub id (org/name)")
    found = hub_snapshot(spec, revision)
    if found is None:
        rev = f" at revision {revision}" if revision else ""
        raise WeightsError(f"the pipeline {spec}{rev} is not in the local Hugging Face cache (models are read from "
                           f"it only); {fetch_hint(spec)}")
    snap, commit = found
    if not is_pipeline(snap):
        raise WeightsError(f"the cached snapshot of {spec} ({snap}) has no {INDEX}: not a diffusers pipeline, or "
                           f"not fully fetched; {fetch_hint(spec)}")
    missing = missing_files(snap)
    if missing:
        raise WeightsError(f"the cached snapshot of {spec} ({snap}) lacks {', '.join(missing)}; {fetch_hint(spec)}")
    return PipelineSource(spec, snap, "hub", hub_id=spec, commit=commit)
