"""Writing a LoRA trained on top of another checkpoint as one adapter on the original base model.

With W' = W + s1 B1 A1 (the init checkpoint, merged before training) and the new LoRA s2 B2 A2 trained on W',
the final weight W + s1 B1 A1 + s2 B2 A2 equals one rank-(r1 + r2) LoRA with A = [A1; A2], B = [s1 B1 | s2 B2]
and scaling 1 (lora_alpha = r). Exact, no SVD; modules only one side targets get zero blocks.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

SUFFIX_A, SUFFIX_B = ".lora_A.weight", ".lora_B.weight"


def _scale(config: dict) -> float:
    r = config["r"]
    return config["lora_alpha"] / (r ** 0.5 if config.get("use_rslora") else r)


def _modules(state: dict) -> set[str]:
    return {k[:-len(SUFFIX_A)] for k in state if k.endswith(SUFFIX_A)}


def combine(first: tuple[dict, dict], second: tuple[dict, dict]) -> tuple[dict, dict]:
    """(state, adapter_config) of the sum of two LoRA adapters, each given as (state, adapter_config) with PEFT's
    saved key names (`<module>.lora_A.weight`, `<module>.lora_B.weight`)."""
    (s1, c1), (s2, c2) = first, second
    r1, r2 = c1["r"], c2["r"]
    k1, k2 = _scale(c1), _scale(c2)
    out: dict[str, torch.Tensor] = {}
    for module in sorted(_modules(s1) | _modules(s2)):
        a1, b1 = s1.get(module + SUFFIX_A), s1.get(module + SUFFIX_B)
        a2, b2 = s2.get(module + SUFFIX_A), s2.get(module + SUFFIX_B)
        ref_a, ref_b = (a1, b1) if a1 is not None else (a2, b2)
        fan_in, fan_out = ref_a.shape[1], ref_b.shape[0]
        if a1 is None:
            a1, b1 = ref_a.new_zeros(r1, fan_in), ref_b.new_zeros(fan_out, r1)
        if a2 is None:
            a2, b2 = ref_a.new_zeros(r2, fan_in), ref_b.new_zeros(fan_out, r2)
        out[module + SUFFIX_A] = torch.cat([a1.float(), a2.float()]).contiguous()
        out[module + SUFFIX_B] = torch.cat([k1 * b1.float(), k2 * b2.float()], dim=1).contiguous()
    config = dict(c2)
    targets = set(_as_list(c1.get("target_modules"))) | set(_as_list(c2.get("target_modules")))
    config.update(r=r1 + r2, lora_alpha=r1 + r2, use_rslora=False, lora_dropout=0.0,
                  target_modules=sorted(targets), rank_pattern={}, alpha_pattern={})
    return out, config


def _as_list(targets) -> list[str]:
    if targets is None:
        return []
    return [targets] if isinstance(targets, str) else list(targets)


def read_adapter(folder: str | Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    return load_file(str(folder / "adapter_model.safetensors")), config


def write_adapter(folder: Path, state: dict, config: dict) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "adapter_model.safetensors"),
              metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=list) + "\n")
