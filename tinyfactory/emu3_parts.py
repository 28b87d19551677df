"""What pretraining the tiny Emu3 does differently from the tiny Janus (`python -m tinyfactory.pretrain --arch emu3`).

Emu3 has no understanding encoder of its own: an image is read as its VQ codes, each code an LM vocabulary row
(`<|visual token NNNNNN|>`), with an end-of-line token after every row. So the pipeline is the same one with two
parts fewer and one change:

* phase 1 is the VQ autoencoder alone, trained with Emu3's own quantiser rule (the squared-distance nearest entry
  that `Emu3VQVAE` and `Emu3Hooks` tokenise with) and a straight-through estimator; there is no encoder part;
* the understanding phase starts from that VQ and learns the visual tokens' LM embeddings from scratch, with the
  per-patch auxiliary head on the LM's last hidden states at the image's positions (the image is read through the
  LM itself here, so that is where the patch's colour, shape and size have to become readable);
* the joint and focus phases are Janus' (same losses, data and schedule), with generation scored over the visual
  tokens as inference samples them (`Emu3Hooks.generation_loss`); the focus phase adds a set-level auxiliary
  (`SetHead`, recipe `set_aux`): POPE-style "Is there a red circle?" questions stayed at chance (yes/no AUC 0.50)
  through the understanding and joint phases, and the image's last position is where a summary of which objects
  it holds can be read by the answer.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.models.checkpoints import TINY_EMU3_DIR
from harness.models.emu3_decode import image_mask, merge_visual, understanding_prompt
from harness.models.emu3_hooks import Emu3Hooks, square_side
from harness.world.scene import COLOR_NAMES, SHAPES
from tinyfactory.steps import Packer, packed_answer_loss, reconstruction_loss
from tinyfactory.workers import AuxHead, load_ckpt

IMAGE_SIZE = 64


def prepare_init(init: Path, r: dict) -> None:
    """Tokenizer (the world's words, Emu3's special tokens, one visual token per code), processor and config."""
    from tinyfactory import data
    from tinyfactory.emu3_build import build_config, build_processor, build_tokenizer

    tok = build_tokenizer(data.vocabulary_words(r["vocab_texts"]), r["model"]["codes"])
    config = build_config(tok, **r["model"])
    config.save_pretrained(init)
    build_processor(tok, IMAGE_SIZE).save_pretrained(init)


def build(workdir: Path):
    from transformers import Emu3Config, Emu3ForConditionalGeneration, Emu3Processor

    processor = Emu3Processor.from_pretrained(workdir / "init")
    config = Emu3Config.from_pretrained(workdir / "init")
    torch.manual_seed(json.loads((workdir / "recipe.json").read_text())["seed"])
    return Emu3ForConditionalGeneration(config), processor


def vq_loss(hooks: Emu3Hooks, pixels: torch.Tensor, weights: torch.Tensor):
    """(loss, reconstruction, codes, latents [M, D]) with Emu3's quantiser rule: weighted L2 + L1 reconstruction
    plus codebook and commitment terms, the nearest entry passed straight through."""
    z = hooks._latents(hooks.pixels_to_pixel_values(pixels))
    idx = hooks._distances(z).argmin(-1)
    q = hooks.code_embeddings(idx)
    q_loss = (q - z.detach()).pow(2).sum(-1).mean() + 0.25 * (z - q.detach()).pow(2).sum(-1).mean()
    recon = hooks.decode(z + (q - z).detach())
    return reconstruction_loss(recon, pixels, weights) + q_loss, recon, idx, z.reshape(-1, z.shape[-1])


class SetHead(torch.nn.Module):
    """Which (colour, shape) pairs an image holds, read from the hidden state at its last position (which has seen
    every code): logits = scale * <h, e(colour) + e(shape)> + bias, with the LM's own word embeddings, so the
    image's summary points where the words of "Is there a red circle?" do."""

    def __init__(self, model, tokenizer):
        super().__init__()
        self.colour_ids = tokenizer.convert_tokens_to_ids(list(COLOR_NAMES))
        self.shape_ids = tokenizer.convert_tokens_to_ids(list(SHAPES))
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.bias = torch.nn.Parameter(torch.tensor(0.0))
        self._embed = [model.get_input_embeddings()]     # not a submodule: never saved with the head

    def forward(self, last: torch.Tensor) -> torch.Tensor:
        table = self._embed[0].weight
        pairs = (table[self.colour_ids][:, None] + table[self.shape_ids][None]).flatten(0, 1)
        return self.scale * last @ pairs.t() + self.bias


def und_loss_with_aux(model, aux_head, batch: dict, aux_weight: float, hooks: Emu3Hooks,
                      set_weight: float = 0.0):
    """Packed understanding loss, plus the auxiliary per-patch loss on the last hidden states at the image's code
    positions (end-of-line positions left out), plus (with `set_weight`) the set-level loss of `SetHead` at the
    image's last position."""
    visual = hooks.visual_tokens(batch["pixel_values"])
    embeds = merge_visual(model, batch["input_ids"], visual)
    loss, acc, hidden = packed_answer_loss(model.model.text_model, model.lm_head, embeds, batch)
    g = hooks.grid
    at_image = hidden[image_mask(model, batch["input_ids"])]
    at_codes = at_image.view(-1, g, g + 1, at_image.shape[-1])[:, :, :g].reshape(-1, g * g, at_image.shape[-1])
    aux = 0.0
    for k, logits in enumerate(aux_head(at_codes)):
        aux = aux + F.cross_entropy(logits.flatten(0, 1), batch["aux"][..., k].flatten())
    if set_weight:
        last = at_image.view(-1, g * (g + 1), at_image.shape[-1])[:, -1]
        aux = aux + set_weight * F.binary_cross_entropy_with_logits(aux_head.set_head(last), batch["present"])
    return loss + aux_weight * aux, loss, aux, acc


class Emu3Arch:
    """The LM phases' view of Emu3 (see `tinyfactory.lm.JanusArch` for Janus')."""

    name = "emu3"
    bundled = TINY_EMU3_DIR
    workdir_prefix = "pretrain-tiny-emu3-"
    first_parts = ("vq",)                # no understanding encoder of its own: its VQ runs alone, on both cores
    phases = {"und": (None, False), "joint": ("und", True), "focus": ("joint", True)}

    def prepare_init(self, init: Path, r: dict) -> None:
        prepare_init(init, r)

    def export_model(self, workdir: Path, r: dict):
        return export_model(workdir, r)

    def build(self, workdir: Path):
        return build(workdir)

    def hooks(self, model, processor) -> Emu3Hooks:
        return Emu3Hooks(model, processor)

    def grid(self, hooks: Emu3Hooks) -> int:
        return hooks.grid

    def packer(self, processor) -> Packer:
        return Packer(processor, prompt=understanding_prompt, image_size=square_side(processor.image_processor))

    def und_loss(self, hooks: Emu3Hooks, r: dict, phase: str):
        return functools.partial(und_loss_with_aux, hooks=hooks, set_weight=r.get("set_aux", {}).get(phase, 0.0))

    def start_from(self, model, processor, workdir: Path, r: dict, phase: str) -> torch.nn.Module:
        """The VQ (every phase reads images through it) and the previous phase's weights; returns the aux head
        (with a fresh `SetHead` in the phases whose `set_aux` weight is not 0)."""
        model.model.vqmodel.load_state_dict(load_ckpt(workdir / "vq.safetensors")["vq"])
        grid = square_side(processor.image_processor) // 8
        aux_head = AuxHead(model, processor.tokenizer, r.get("aux_tied", False), grid)
        previous = self.phases[phase][0]
        if previous is not None:
            prev = load_ckpt(workdir / f"{previous}.safetensors")
            model.load_state_dict(prev["model"], strict=False)
            aux_head.load_state_dict({k: v for k, v in prev["aux"].items() if not k.startswith("set_head.")})
        if r.get("set_aux", {}).get(phase, 0.0):
            aux_head.set_head = SetHead(model, processor.tokenizer)
        return aux_head

    def encoder_modules(self, model) -> list:
        return []

    def generation_modules(self, model) -> list:
        return []          # generation and understanding share every LM module

    def codes(self, hooks: Emu3Hooks, pixels: torch.Tensor) -> torch.Tensor:
        return hooks.vq_encode(pixels)[0]

    def vq_part(self, model, processor):
        """(the VQ module, its loss(pixels, weights) -> (loss, reconstruction, codes, latents))."""
        return model.model.vqmodel, functools.partial(vq_loss, Emu3Hooks(model, processor))


def export_model(workdir: Path, r: dict):
    """(model, processor) with the trained VQ and the last LM phase's weights, and the recipe's generation
    settings."""
    from tinyfactory.emu3_build import generation_config

    model, processor = build(workdir)
    model.model.vqmodel.load_state_dict(load_ckpt(workdir / "vq.safetensors")["vq"])
    missing = model.load_state_dict(load_ckpt(workdir / "focus.safetensors")["model"], strict=False).missing_keys
    assert all(k.startswith("model.vqmodel.") for k in missing), missing
    model.generation_config = generation_config(processor.tokenizer, IMAGE_SIZE, guidance_scale=r["guidance"])
    return model, processor
