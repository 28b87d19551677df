"""Loading a model for training through the harness's own adapter, then adding LoRA.

The harness resolves `--model` (registered name, hub id, local folder or trainer checkpoint) and its adapter's
`training_hooks()` gives the model, processor and the hooks the trainer talks to; nothing here re-implements
loading. Every base weight is frozen (vision encoder, aligners, VQ model, generation head, embeddings, the LM
itself); LoRA on the LM backbone's projections is what the understanding player trains.

Stacking (`--init-from CHECKPOINT`): the checkpoint's LoRA is merged into its base model and a fresh LoRA is
trained on top; at save time the two are written as one adapter on the original base (see stacking.py), because
a checkpoint's base model cannot itself be a checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.errors import HarnessError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class Loaded:
    adapter: object                  # the harness UnifiedModel that loaded the weights
    hooks: object                    # harness.models.hooks.TrainingHooks
    peft: object                     # peft.PeftModel wrapping hooks.model (LoRA injected in place)
    base_model: str                  # what harness.json names as base_model
    base_params: int
    init: dict | None = None         # {"path", "method", "adapter_dir", "meta"} when stacking
    lora_targets: list[str] = field(default_factory=list)

    @property
    def model(self):
        return self.hooks.model


def init_source(init_from: str, model_flag: str | None) -> dict:
    """What an --init-from folder is: a trainer checkpoint (adapter on a base) or a plain model folder."""
    path = Path(init_from).expanduser()
    if not path.is_dir():
        raise HarnessError(f"--init-from {init_from}: no such checkpoint folder")
    meta_file = path / "harness.json"
    if not meta_file.is_file() and not (path / "config.json").is_file():
        raise HarnessError(f"--init-from {init_from}: neither a trainer checkpoint (harness.json) nor a model folder "
                           "(config.json and safetensors weights)")
    if not meta_file.is_file():
        return {"path": str(path.resolve()), "method": "init", "adapter_dir": None, "meta": {},
                "base_model": str(path.resolve())}
    meta = json.loads(meta_file.read_text())
    if meta.get("init_from"):
        raise HarnessError(f"--init-from {init_from}: already a stacked checkpoint; stack on its own base run")
    base = meta.get("base_model")
    from harness.models.checkpoints import adapter_folder
    from unigame.checkpoint import same_model

    if model_flag and base and not same_model(model_flag, base):     # the rule --resume applies too
        raise HarnessError(f"--init-from {init_from} was trained on {base!r}, not on --model {model_flag!r}; "
                           "omit --model or pass the same one")
    adapter_dir = adapter_folder(path, meta)
    has_lora = (adapter_dir / "adapter_config.json").is_file()
    return {"path": str(path.resolve()), "method": meta.get("method", "init"),
            "adapter_dir": str(adapter_dir) if has_lora else None, "meta": meta,
            "base_model": base if has_lora else str(path.resolve())}


def resolve(cfg, device: str):
    """(adapter, init): the harness adapter for --model or --init-from (cheap: no weights are read yet)."""
    from harness.models import resolve_model

    init = init_source(cfg.init_from, cfg.model if "model" in cfg.explicit else None) if cfg.init_from else None
    spec = init["path"] if init else cfg.model
    adapter = resolve_model(spec, {"device": device, "dtype": cfg.weights_dtype, "merge_lora": True})
    if not hasattr(adapter, "training_hooks"):
        raise HarnessError(f"--model {spec}: the {adapter.name} adapter offers no training hooks")
    hooks_cls = getattr(adapter, "training_hooks_class", None)
    if hooks_cls is not None:             # else load_for_training checks once the hooks exist
        fit_to_model(cfg, hooks_cls(), spec)
    return adapter, init


def fit_to_model(cfg, hooks_cls, spec: str) -> None:
    """Refuse what the model's hooks cannot serve (before any weights load when the adapter names its hooks'
    class), and take the model's own interface where --interface was not given (given as the model's own, it is
    no departure: the label does not name it)."""
    refused = getattr(hooks_cls, "UNSUPPORTED", {})
    if cfg.reference_compat and "reference_compat" in refused:
        raise HarnessError(f"--reference-compat does not apply to --model {spec}: {refused['reference_compat']}")
    default = getattr(hooks_cls, "DEFAULT_INTERFACE", "lm")
    if cfg.interface is None:
        cfg.interface = default
    elif cfg.interface == default and "interface" in cfg.explicit:
        cfg.explicit = [k for k in cfg.explicit if k != "interface"]


def load_for_training(cfg, adapter, init: dict | None) -> Loaded:
    from peft import LoraConfig, get_peft_model

    hooks = adapter.training_hooks()
    fit_to_model(cfg, type(hooks), cfg.model)
    model = hooks.model
    model.requires_grad_(False)
    base_params = sum(p.numel() for p in model.parameters())
    targets = lora_targets(hooks, cfg.lora_targets)
    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets, bias="none")
    torch.manual_seed(cfg.seed)          # LoRA A matrices are drawn here: the same on every rank and every resume
    peft_model = get_peft_model(model, config)
    _check_frozen(model, hooks.frozen_modules())
    base = init["base_model"] if init else cfg.model
    return Loaded(adapter, hooks, peft_model, base, base_params, init, targets)


def lora_targets(hooks, wanted: list[str] | None) -> list[str]:
    """The hooks' LM projections, optionally narrowed to names ending with one of `wanted` (e.g. q_proj)."""
    names = hooks.lora_target_modules()
    if not wanted:
        return names
    chosen = [n for n in names if any(n.endswith(w) for w in wanted)]
    if not chosen:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise HarnessError(f"--lora-targets {','.join(wanted)} matches none of the LM projections "
                           f"({', '.join(suffixes)})")
    return chosen


def _check_frozen(model, frozen: list[str]) -> None:
    """LoRA must not reach the modules UniGame keeps frozen (a target list that does is a bug in it)."""
    for name, p in model.named_parameters():
        if p.requires_grad and any(name.startswith(f + ".") for f in frozen):
            raise HarnessError(f"LoRA target inside a frozen module: {name}")


def trainable(loaded: Loaded) -> list[torch.nn.Parameter]:
    return [p for p in loaded.model.parameters() if p.requires_grad]
