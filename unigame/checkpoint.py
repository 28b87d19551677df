"""Checkpoints: what evaluation loads, and what an exact resume needs, written atomically.

    <output>/checkpoints/<run>-step000100/
        adapter_config.json, adapter_model.safetensors    the LoRA (on the original base when stacked)
        harness.json                                      adapter, base_model, method, hyper-parameters, step...
        training/lora.safetensors                         the trainable LoRA tensors by parameter name
        training/perturber.safetensors                    C
        training/state.safetensors                        optimisers, schedules, step, every rank's buffer
                                                          (tensors + JSON, harness/statefile.py: no pickle)
        COMPLETE                                          written last

Everything is written into a hidden temporary folder in that order and renamed into place, so a folder without
COMPLETE is never seen under its final name. `python -m harness run --model <folder>` reads only the adapter
files and harness.json; nothing under training/ is loaded for evaluation. Nothing is pickled: a checkpoint
folder from elsewhere cannot run code on `--resume` (checkpoints of earlier versions, training/state.pt, are read
with torch.load(weights_only=True), which refuses anything but tensors and plain containers).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from harness.errors import HarnessError
from harness.statefile import load_legacy, load_state, save_state
from unigame.fsdp import full, like

MARKER = "COMPLETE"
STATE = "state.safetensors"
LEGACY_STATE = "state.pt"           # written by earlier versions with torch.save


def checkpoint_name(run_name: str, step: int) -> str:
    return f"{run_name}-step{step:06d}"


def complete(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "harness.json").is_file()


def step_of(folder: Path) -> int:
    return int(json.loads((folder / "harness.json").read_text())["step"])


def latest(root: Path) -> Path | None:
    found = [p for p in Path(root).glob("*-step*") if p.is_dir() and complete(p)]
    return max(found, key=step_of) if found else None


def base_of(folder: Path) -> str | None:
    """The base model a checkpoint was trained on, as its harness.json records it (None when unreadable)."""
    try:
        trained = json.loads((Path(folder) / "harness.json").read_text()).get("base_model")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return None if trained is None else str(trained)


def check_base(folder: Path, base: str, resume: bool) -> None:
    """Refuse a checkpoint folder of a run from another base model: the same architecture would load that run's
    LoRA without complaint, and training would go on from the wrong base."""
    trained = base_of(folder)
    if trained is not None and not same_model(trained, base):
        how = f"pass --model {trained} to continue that run, or " if resume else ""
        raise HarnessError(f"--output {Path(folder).parent.parent} holds checkpoints of a run from {trained}, not "
                           f"{base}; {how}choose another --output")


def same_model(a: str, b: str) -> bool:
    """Two --model spellings of one model: equal, or local folders that resolve to the same place."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return a == b or (pa.exists() and pb.exists() and pa.resolve() == pb.resolve())


def lora_state(trainer) -> dict:
    """Trainable LoRA tensors by parameter name, whole (a collective under --fsdp)."""
    model = trainer.hooks.model
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: full(p.detach()).float().cpu().contiguous() for p in trainer.lora}


def save(trainer, root: Path, run_name: str, meta: dict) -> Path:
    """Write the checkpoint of trainer.step. Every rank calls this (gathering sharded tensors and buffers is
    collective); rank 0 writes."""
    from safetensors.torch import save_file

    dist = trainer.dist
    buffers = dist.gather_objects(trainer.buffer.state_dict() if trainer.buffer is not None else None)
    lora = lora_state(trainer)
    adapter = _adapter_files(trainer)
    state = {"trainer": trainer.state_dict(), "buffers": buffers, "world_size": dist.world,
             "config": trainer.cfg.hyper_parameters()}
    final = Path(root) / checkpoint_name(run_name, trainer.step)
    if dist.main:
        from unigame import stacking

        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "training").mkdir(parents=True)
        stacking.write_adapter(tmp, *adapter)
        save_file(lora, str(tmp / "training" / "lora.safetensors"))
        if trainer.perturber is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in trainer.perturber.state_dict().items()},
                      str(tmp / "training" / "perturber.safetensors"))
        save_state(state, tmp / "training" / STATE)
        (tmp / "harness.json").write_text(json.dumps({**meta, "step": trainer.step, "created": time.time()},
                                                     indent=2, default=str) + "\n")
        (tmp / MARKER).write_text(f"{trainer.step}\n")
        _replace_dir(tmp, final)
    dist.barrier()
    return final


def _adapter_files(trainer) -> tuple[dict, dict]:
    """(state, adapter_config) of the evaluation adapter: the LoRA, combined with the init one when stacked."""
    from peft import get_peft_model_state_dict

    from unigame import stacking

    peft = trainer.loaded.peft
    init = trainer.loaded.init
    state = {k: full(v.detach()).float().cpu() for k, v in get_peft_model_state_dict(peft).items()}
    config = json.loads(json.dumps(peft.peft_config["default"].to_dict(), default=list))
    config["base_model_name_or_path"] = trainer.loaded.base_model
    config["target_modules"] = sorted(config.get("target_modules") or [])   # a set: unordered otherwise
    if init and init.get("adapter_dir"):
        state, config = stacking.combine(stacking.read_adapter(init["adapter_dir"]), (state, config))
    return state, config


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():   # a re-save of the same step: move the old one aside first, never leave neither
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def restore(trainer, folder: Path) -> dict:
    """Load a checkpoint's training state into `trainer` (every rank); returns its harness.json."""
    from safetensors.torch import load_file

    meta = json.loads((folder / "harness.json").read_text())
    state = read_state(folder)
    ours = trainer.cfg.hyper_parameters()
    differ = sorted(k for k in ours if k != "steps" and state["config"].get(k) != ours[k])
    if differ:
        shown = ", ".join(f"{k} ({state['config'].get(k)!r} there, {ours[k]!r} now)" for k in differ[:3])
        raise HarnessError(f"--resume: {folder} was trained with different settings: {shown}; use the same flags "
                           "or another --output")
    named = dict(trainer.hooks.model.named_parameters())
    with torch.no_grad():
        for name, tensor in load_file(str(folder / "training" / "lora.safetensors")).items():
            named[name].copy_(like(named[name], tensor))
        if trainer.perturber is not None:
            trainer.perturber.load_state_dict(load_file(str(folder / "training" / "perturber.safetensors")))
    trainer.load_state_dict(state["trainer"])
    if trainer.buffer is not None:
        trainer.buffer.load_state_dict(_buffer_for(state["buffers"], trainer.dist, state["world_size"]))
    return meta


def read_state(folder: Path) -> dict:
    """The training state of a checkpoint folder, loaded without running any code from it."""
    training = Path(folder) / "training"
    if (training / STATE).exists() or not (training / LEGACY_STATE).exists():
        state = load_state(training / STATE, "training state")
    else:
        state = load_legacy(training / LEGACY_STATE, "training state")
    if not isinstance(state, dict) or not {"trainer", "buffers", "world_size", "config"} <= set(state):
        raise HarnessError(f"{training}: the training state lacks trainer, buffers, world_size or config; the "
                           "checkpoint is incomplete")
    return state


def _buffer_for(buffers: list, dist, saved_world: int) -> dict:
    """This rank's buffer; with another number of processes the saved items are dealt out again by rank."""
    if saved_world == dist.world:
        return buffers[dist.rank]
    items = sorted((it for b in buffers for it in b["items"]), key=lambda it: (-it["hardness"], it["seq"]))
    state = dict(buffers[0])
    state["items"] = items[dist.rank::dist.world]
    return state


def prune(root: Path, keep: int | None, protect: set[Path]) -> None:
    """Delete all but the newest `keep` complete checkpoints (never one in `protect`)."""
    if not keep:
        return
    found = sorted((p for p in Path(root).glob("*-step*") if p.is_dir() and complete(p)), key=step_of)
    for p in found[:-keep]:
        if p not in protect:
            shutil.rmtree(p, ignore_errors=True)
