"""Where a model's files are, and what identifies them, without loading any weights.

A spec is a registered name, a Hugging Face hub id (read from the local HF cache; nothing is downloaded unless the
user asks), a local Hugging Face folder, or a trainer checkpoint folder (`harness.json` naming the base model, plus
PEFT adapter files). Missing files raise one `WeightsError` line that names the files and where to put them.

Identity (for fingerprints): a hub snapshot is identified by its commit; a local folder by the hashes of its config,
tokenizer/processor and weight files. Hashing a 15 GB folder takes minutes, so weight-file hashes are cached in
`~/.cache/harness/file-hashes.json` (`$HARNESS_CACHE` moves it), keyed by real path, size and modification time.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, WeightsError
from harness.hub import HUB_ID, cached_commit, hub_cache, snapshot_dir
from harness.store import sha256_file

TINY_DIR = Path(__file__).resolve().parent / "tiny_janus"
TINY_EMU3_DIR = Path(__file__).resolve().parent / "tiny_emu3"
#: the bundled models' folders -> (name, the command that rebuilds it)
BUNDLED = {TINY_DIR: ("tiny-janus", "python -m tinyfactory.pretrain"),
           TINY_EMU3_DIR: ("tiny-emu3", "python -m tinyfactory.pretrain --arch emu3")}
NAMED = {
    "janus-pro-1b": "deepseek-community/Janus-Pro-1B",
    "janus-pro-7b": "deepseek-community/Janus-Pro-7B",
    "tiny-janus": str(TINY_DIR),
}
SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "tokenizer.model", "preprocessor_config.json", "processor_config.json",
               "chat_template.jinja", "chat_template.json", "model.safetensors.index.json",
               "adapter_config.json", "harness.json")
NEEDED = "config.json, model.safetensors (or model.safetensors.index.json and its shards), tokenizer.json, " \
         "tokenizer_config.json, preprocessor_config.json"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class Source:
    """Resolved model files. `path` is a Hugging Face folder; `adapter_dir` holds PEFT files applied on top."""

    spec: str
    path: Path
    kind: str                      # "hub", "local" or "checkpoint"
    hub_id: str | None = None
    commit: str | None = None
    adapter_dir: Path | None = None
    meta: dict = field(default_factory=dict)
    base: "Source | None" = None

    def identity(self) -> dict:
        """What the outputs depend on, cheaply: hub commit or content hashes (cached), plus the adapter's hash."""
        if self.kind == "checkpoint":
            out = {"base": self.base.identity() if self.base else None,
                   "adapter": folder_hash(self.adapter_dir, PEFT_FILES) if self.adapter_dir else None}
            if self.base is None:
                out["weights"] = folder_hash(self.path)
            return out
        if self.kind == "hub":
            return {"hub": self.hub_id, "commit": self.commit}
        return {"local": folder_hash(self.path)}

    def describe(self) -> dict:
        out = {"kind": self.kind, "path": str(self.path)}
        if self.hub_id:
            out.update(hub_id=self.hub_id, commit=self.commit)
        if self.kind == "checkpoint":
            out.update(base=self.base.describe() if self.base else None,
                       method=self.meta.get("method"), hyper_parameters=self.meta.get("hyper_parameters"))
        return out


def cache_dir() -> Path:
    from harness.store import cache_root

    return cache_root()


def fetch_hint(hub_id: str) -> str:
    return (f"fetch them with `hf download {hub_id}` (into the Hugging Face cache, {hub_cache()}), or put the "
            f"files ({NEEDED}) in a folder and pass that folder as --model")


def hub_snapshot(hub_id: str, revision: str | None = None) -> tuple[Path, str] | None:
    """(snapshot folder, commit) of a hub repo in the local cache, or None."""
    commit = cached_commit(hub_id, revision)
    snap = snapshot_dir(hub_id, commit)
    return (snap, commit) if snap is not None else None


def missing_files(folder: Path) -> list[str]:
    """Files a loadable Janus folder lacks (empty when complete)."""
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError):
            shards = []
            missing.append("a readable model.safetensors.index.json")
        missing += [s for s in shards if not (folder / s).is_file()]
    elif not (folder / "model.safetensors").is_file():
        has_bin = any(folder.glob("*.bin"))
        missing.append("model.safetensors" + (" (only PyTorch .bin weights are there; this harness loads "
                                              "safetensors only)" if has_bin else ""))
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer.model").is_file():
        missing.append("tokenizer.json")
    if not (folder / "tokenizer_config.json").is_file():
        missing.append("tokenizer_config.json")
    if not any((folder / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json")
    return missing


def locate(spec: str, revision: str | None = None, download: bool = False, names: dict | None = None,
           _nested: bool = False) -> Source:
    """Resolve a registered name, local folder, trainer checkpoint folder or hub id to its files; `names` maps
    the calling adapter's registered names to folders or hub ids (default: Janus's, NAMED)."""
    names = NAMED if names is None else names
    target = names.get(spec, spec)
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HarnessError(f"--model {spec}: a file, not a model folder")
        if (path / "harness.json").is_file():
            if _nested:
                raise HarnessError(f"{path}: a trainer checkpoint cannot be the base model of another one")
            return _checkpoint(spec, path, revision, download, names)
        missing = missing_files(path)
        if missing:
            bundled = BUNDLED.get(path)
            where = f"the bundled tiny model ({bundled[0]})" if bundled else f"model folder {path}"
            hint = f" (run `{bundled[1]}` to rebuild it)" if bundled else ""
            raise WeightsError(f"{where} is missing {', '.join(missing)}; a model folder needs {NEEDED}{hint}")
        return Source(spec, path, "local")
    bundled = BUNDLED.get(Path(names[spec])) if spec in names else None
    if bundled:
        raise WeightsError(f"the bundled tiny model is missing (expected {names[spec]} with {NEEDED}); reinstall "
                           f"the package or run `{bundled[1]}`")
    if HUB_ID.match(target):
        found = hub_snapshot(target, revision)
        if found is None and download:
            found = _download(target, revision)
        if found is None:
            rev = f" at revision {revision}" if revision else ""
            raise WeightsError(f"weights for {target}{rev} are not in the local Hugging Face cache and this run is "
                               f"offline; {fetch_hint(target)}")
        snap, commit = found
        missing = missing_files(snap)
        if missing:
            raise WeightsError(f"the cached snapshot of {target} ({snap}) lacks {', '.join(missing)}; "
                               f"{fetch_hint(target)}")
        return Source(spec, snap, "hub", hub_id=target, commit=commit)
    raise HarnessError(f"--model {spec}: not a registered model, an existing folder or a hub id (org/name)")


def _download(hub_id: str, revision: str | None) -> tuple[Path, str] | None:
    from huggingface_hub import snapshot_download

    from harness.hub import offline_reason, online

    if not online():
        raise WeightsError(f"weights for {hub_id} are not in the local Hugging Face cache and {offline_reason()}; "
                           f"{fetch_hint(hub_id)}")
    try:
        snapshot_download(hub_id, revision=revision,
                          allow_patterns=["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt"])
    except Exception as e:  # no network, gated repo, unknown id: say so in one line
        raise WeightsError(f"downloading {hub_id} failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                           f"{fetch_hint(hub_id)}") from None
    return hub_snapshot(hub_id, revision)


def adapter_folder(path: Path, meta: dict) -> Path:
    """Where a checkpoint's PEFT files are: harness.json's adapter_dir, a folder inside the checkpoint (a copied
    or downloaded checkpoint must not load, hash or stack another folder's adapter), else the checkpoint itself."""
    name = meta.get("adapter_dir")
    if not name:
        return path
    if not isinstance(name, str) or not (path / name).resolve().is_relative_to(path.resolve()):
        raise HarnessError(f"{path / 'harness.json'}: adapter_dir {name!r} is not a folder inside the checkpoint; "
                           "name one inside it, or leave it out when the adapter files sit in the checkpoint itself")
    return path / name


def _checkpoint(spec: str, path: Path, revision: str | None, download: bool, names: dict) -> Source:
    try:
        meta = json.loads((path / "harness.json").read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path / 'harness.json'}: not valid JSON ({e})") from None
    adapter_dir = adapter_folder(path, meta)
    has_peft = (adapter_dir / "adapter_config.json").is_file()
    if not has_peft and (path / "config.json").is_file():   # a full fine-tune saved as a Hugging Face folder
        missing = missing_files(path)
        if missing:
            raise WeightsError(f"checkpoint {path} is missing {', '.join(missing)}; it needs {NEEDED}")
        return Source(spec, path, "checkpoint", meta=meta)
    missing = [f for f in PEFT_FILES if not (adapter_dir / f).is_file()]
    if missing:
        has_bin = (adapter_dir / "adapter_model.bin").is_file()
        raise WeightsError(f"checkpoint {path} is missing {', '.join(missing)} in {adapter_dir}"
                           + (" (only adapter_model.bin is there; safetensors only)" if has_bin else "")
                           + "; a trainer checkpoint needs harness.json, adapter_config.json and "
                             "adapter_model.safetensors (or config.json and model.safetensors for full weights)")
    base_spec = meta.get("base_model")
    if not base_spec:
        raise HarnessError(f"{path / 'harness.json'}: missing 'base_model' (the model the adapter was trained on)")
    rel = path / base_spec
    base_path = str(rel) if not Path(base_spec).is_absolute() and rel.exists() else base_spec
    try:
        base = locate(base_path, meta.get("base_revision") or revision, download, names, _nested=True)
    except WeightsError as e:
        raise WeightsError(f"base model of checkpoint {path}: {e}") from None
    return Source(spec, base.path, "checkpoint", hub_id=base.hub_id, commit=base.commit, adapter_dir=adapter_dir,
                  meta=meta, base=base)


# ---------------------------------------------------------------------------------------------- content hashes

def file_hash(p: Path) -> str:
    """sha256 of a file; large files are looked up in the on-disk cache by (real path, size, mtime)."""
    st = p.stat()
    if st.st_size < (1 << 20):
        return sha256_file(p)
    store = cache_dir() / "file-hashes.json"
    key = f"{os.path.realpath(p)}|{st.st_size}|{st.st_mtime_ns}"
    try:
        known = json.loads(store.read_text())
    except (OSError, json.JSONDecodeError):
        known = {}
    if key in known:
        return known[key]
    digest = sha256_file(p)
    try:  # re-read before writing so concurrent processes mostly keep each other's entries
        try:
            known = json.loads(store.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}
        known[key] = digest
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=0, sort_keys=True))
        os.replace(tmp, store)
    except OSError:
        pass  # a read-only home only costs re-hashing next time
    return digest


def folder_hash(folder: Path, names: tuple[str, ...] | None = None) -> str:
    """Hash of a model folder's identity-bearing files: configs, tokenizer/processor files, *.safetensors."""
    files = [folder / n for n in (names or SMALL_FILES) if (folder / n).is_file()]
    if names is None:
        files += sorted(folder.glob("*.safetensors"))
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(f"{f.name}:{file_hash(f)}\n".encode())
    return h.hexdigest()[:32]
