"""Training hooks (harness.models.hooks.TrainingHooks) for transformers' `Emu3ForConditionalGeneration`.

Where Emu3's interfaces are (docs/unigame.md says why these choices):

* understanding: image -> processor normalisation -> **VQ encoder** -> nearest codebook entry -> the LM's embedding
  of that code's `<|visual token|>` (plus an end-of-line embedding after each row) at the `<image>` placeholders.
  The visual tokens are LM input embeddings [n, h*(w+1), d_lm]; Emu3 has no separate understanding encoder.
* generation: VQ codes <-> **code embeddings** (the codebook rows [N, embed_dim], what the VQ decoder reads) ->
  pixels. The default interface of the game (`DEFAULT_INTERFACE = "code"`) is these code embeddings, which both
  branches share: understanding tokenises an image into them, generation decodes them. `--interface lm` uses the
  LM embeddings of the visual tokens instead (mapped back by a soft nearest-codebook assignment, as for Janus).

The quantiser (argmin of squared distance) has no gradient, so `visual_tokens` is a straight-through estimator:
the forward value is exactly the hard nearest code's embedding (the tokens inference would read), the backward
pass is that of a softmax over the codebook of -d^2 / (tau * mean d^2) (per token, tau = REENCODE_TEMPERATURE),
so a perturbation decoded into pixels and re-encoded receives gradients through the VQ encoder.

Training images are square (`image_size`, the side the understanding processor gives a square image), so the clean
rows, the decoded candidates and the buffer share one token layout; inference keeps each image's aspect ratio.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from harness.models.decoding import per_row_loss, positions, resize_pixels
from harness.models.emu3_decode import (NEGATIVE_PROMPT, SYSTEM_PROMPT, eol_id, generation_inputs, layout_ids,
                                        merge_visual, understanding_prompt, visual_table)
from harness.models.hooks import GenerationBatch, UnderstandingBatch

LORA_PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
FROZEN = ("model.vqmodel", "model.text_model.embed_tokens", "lm_head")
#: temperature of the straight-through re-encoding, relative to each token's mean squared code distance: low enough
#: that the nearest codes dominate the backward pass, high enough that it is not one-hot (which has no gradient)
REENCODE_TEMPERATURE = 0.1


def square_side(image_processor) -> int:
    """The side the understanding processor gives a square image at its smallest size (Emu3-Chat-hf: 512)."""
    from transformers.models.emu3.image_processing_emu3 import smart_resize

    get = image_processor.get if isinstance(image_processor, dict) else lambda k, d=None: getattr(image_processor, k, d)
    factor, low, high = int(get("spatial_factor", 8)), int(get("min_pixels", 512 * 512)), \
        int(get("max_pixels", 1024 * 1024))
    n = math.isqrt(low)
    return int(smart_resize(n, n, factor, low, high)[0])


class Emu3Hooks:
    DEFAULT_INTERFACE = "code"
    #: trainer features these hooks refuse, with the reason (one line each)
    UNSUPPORTED = {
        "reference_compat": "the reference code mines hard samples by drawing images with the network being "
                            "trained, which Emu3 splits into Emu3-Chat-hf (answers) and Emu3-Gen-hf (draws); its "
                            "model-neutral switches stay available (--no-decode, --tau 0.8, --hinge-weight 0.2, "
                            "--buffer-pop, --separate-hard-step, --gen-lr, --und-lr)"}

    def __init__(self, model, processor, system_prompt: str = SYSTEM_PROMPT,
                 negative_prompt: str = NEGATIVE_PROMPT):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.system_prompt, self.negative_prompt = system_prompt, negative_prompt
        ip = processor.image_processor
        self.mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(ip.image_std).view(1, 3, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> int:
        return square_side(self.processor.image_processor)

    @property
    def grid(self) -> int:
        return self.image_size // 8

    def token_dim(self, space: str) -> int:
        """Width of z: "code" (codebook entries), "lm" or "visual" (LM input embeddings)."""
        if space == "code":
            return int(self.model.config.vq_config.embed_dim)
        return int(self.model.config.text_config.hidden_size)

    # ----------------------------------------------------------------------------------------- understanding

    def _square(self, images) -> list:
        from PIL import Image as PILImage

        s = self.image_size
        return [im.convert("RGB").resize((s, s), PILImage.BICUBIC) for im in images]

    def understanding_batch(self, images: Sequence, questions: Sequence[str],
                            answers: Sequence[str]) -> UnderstandingBatch:
        tok = self.tokenizer
        rows, labels, flat, counts = [], [], [], []
        for imgs, q, a in zip(images, questions, answers):
            imgs = self._square(list(imgs) if isinstance(imgs, (list, tuple)) else [imgs])
            prompt_text = understanding_prompt(self.processor, q, len(imgs), self.system_prompt)
            enc = self.processor(text=[prompt_text], images=imgs or None, return_tensors="pt")
            prompt = enc["input_ids"][0].tolist()
            answer = tok(" " + a.strip(), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
            if imgs:
                flat.append(enc["pixel_values"])
            counts.append(len(imgs))
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        lab = torch.tensor([[-100] * (width - len(r)) + r for r in labels])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        pv = torch.cat(flat) if flat else None
        return UnderstandingBatch(ids, mask, lab, pv, counts).to(self.device)

    def _latents(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Continuous latents [B, N, embed_dim] the quantiser reads (`Emu3VQVAE.encode` without the argmin)."""
        vq = self.model.model.vqmodel
        frames = vq.config.temporal_downsample_factor      # an image is repeated into a clip, as encode() does
        x = pixel_values.to(self.device, vq.dtype).unsqueeze(1).repeat(1, frames, 1, 1, 1)
        h = vq.quant_conv(vq.encoder(x).permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)
        if h.shape[1] != 1:
            raise ValueError(f"an image encodes to {h.shape[1]} latent frames, not 1")
        return h[:, 0].flatten(2).transpose(1, 2)

    def _distances(self, latents: torch.Tensor) -> torch.Tensor:
        """Squared distances [B, N, K] to every codebook entry (the quantiser's)."""
        cb = self._codebook()
        z = latents.to(cb.dtype)
        return z.pow(2).sum(-1, keepdim=True) + cb.pow(2).sum(-1) - 2 * z @ cb.t()

    def _soft(self, d2: torch.Tensor, temperature: float) -> torch.Tensor:
        scale = d2.detach().float().mean(-1, keepdim=True).clamp(min=1e-12)
        return torch.softmax(-d2.float() / (temperature * scale), dim=-1)

    def _lm_table(self) -> torch.Tensor:
        """[K, d_lm]: the LM input embedding of each code's visual token, in code order."""
        return self.model.get_input_embeddings().weight.index_select(0, visual_table(self.model))

    def _with_eol(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, h*w, d] -> [B, h*(w+1), d]: the end-of-line embedding after every row, as the LM reads an image."""
        b, n, d = tokens.shape
        side = math.isqrt(n)
        eol = self.model.get_input_embeddings().weight[eol_id(self.model)].to(tokens.dtype)
        rows = tokens.view(b, side, side, d)
        return torch.cat([rows, eol.expand(b, side, 1, d)], dim=2).reshape(b, side * (side + 1), d)

    def visual_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Visual tokens [n, h*(w+1), d_lm]: the LM embeddings of the image's codes (straight-through, so the
        forward value is the inference one and gradients reach the pixels)."""
        d2 = self._distances(self._latents(pixel_values))
        codes = d2.argmin(-1)
        table = self._lm_table()
        hard = table[codes]
        if torch.is_grad_enabled() and d2.requires_grad:
            soft = self._soft(d2, REENCODE_TEMPERATURE).to(table.dtype) @ table
            hard = hard + (soft - soft.detach())
        return self._with_eol(hard)

    def _hidden(self, batch: UnderstandingBatch, visual: torch.Tensor | None, all_layers: bool = False):
        if visual is None and batch.pixel_values is not None:
            visual = self.visual_tokens(batch.pixel_values)
        embeds = merge_visual(self.model, batch.input_ids, visual,
                              precise=torch.is_autocast_enabled(self.device.type))
        out = self.model.model.text_model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                                          position_ids=positions(batch.attention_mask), use_cache=False,
                                          output_hidden_states=all_layers)
        return out.hidden_states if all_layers else out.last_hidden_state

    def answer_logits(self, batch: UnderstandingBatch, visual: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.lm_head(self._hidden(batch, visual))

    def answer_loss(self, batch: UnderstandingBatch, visual: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self._hidden(batch, visual)[:, :-1]
        target = batch.labels[:, 1:]
        keep = target != -100
        # the LM head only where there is an answer token (Emu3's vocabulary has 184k entries)
        return per_row_loss(self.model.lm_head(hidden[keep]), target[keep], keep.nonzero()[:, 0], target.shape[0])

    def pixels_to_pixel_values(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable: images in [-1, 1] -> the processor's normalisation at the training size."""
        mean, std = self.mean.to(pixels.device, pixels.dtype), self.std.to(pixels.device, pixels.dtype)
        return (resize_pixels((pixels + 1) / 2, self.image_size) - mean) / std

    def reencode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual_tokens(self.pixels_to_pixel_values(pixels))

    # ----------------------------------------------------------------------------------------- generation

    def images_to_pixels(self, images: Sequence) -> torch.Tensor:
        import numpy as np

        arrs = [np.asarray(im, dtype=np.float32) for im in self._square(images)]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2) / 127.5 - 1
        return x.to(self.device, self.model.dtype)

    def _codebook(self) -> torch.Tensor:
        return self.model.model.vqmodel.quantize.embedding.weight

    def vq_encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latents = self._latents(self.pixels_to_pixel_values(pixels.to(self.device)))
        return self._distances(latents).argmin(-1), latents

    def code_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        return self._codebook()[codes]

    def generation_embeddings(self, codes_or_weights: torch.Tensor) -> torch.Tensor:
        """The LM embeddings of the visual tokens: what generation feeds back and understanding reads."""
        table = self._lm_table()
        if not codes_or_weights.is_floating_point():
            return table[codes_or_weights]
        return codes_or_weights.to(table.dtype) @ table

    def lm_to_code_embeddings(self, lm_embeds: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
        sim = F.normalize(lm_embeds, dim=-1) @ F.normalize(self._lm_table(), dim=-1).t()
        return torch.softmax(sim.float() / temperature, dim=-1).to(lm_embeds.dtype) @ self._codebook()

    def decode(self, code_embeds: torch.Tensor, quantize: str = "none", temperature: float = 0.05) -> torch.Tensor:
        """Code embeddings [B, N, embed_dim] -> pixels in [-1, 1] through Emu3's VQ decoder, continuous (the index
        lookup of `Emu3VQVAE.decode` skipped, so gradients reach whatever was added to them)."""
        vq = self.model.model.vqmodel
        cb = self._codebook()
        e = code_embeds.to(cb.dtype)
        if quantize in ("soft", "straight_through"):
            d2 = self._distances(e)
            if quantize == "soft":
                e = self._soft(d2, temperature).to(cb.dtype) @ cb
            else:
                e = e + (cb[d2.argmin(-1)] - e).detach()
        elif quantize != "none":
            raise ValueError(f"quantize must be none, soft or straight_through, not {quantize!r}")
        b, n, c = e.shape
        side = math.isqrt(n)
        quant = e.view(b, 1, side, side, c).permute(0, 4, 1, 2, 3)          # [B, C, T=1, h, w]
        post = vq.post_quant_conv(quant)
        video = vq.decoder(post.permute(0, 2, 1, 3, 4), quant.permute(0, 2, 1, 3, 4))
        frames = vq.config.temporal_downsample_factor
        x = video.reshape(b, frames, vq.config.out_channels, *video.shape[-2:])[:, 0]
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        return (x * std + mean) * 2 - 1

    def generation_batch(self, prompts: Sequence[str], codes: torch.Tensor,
                         drop_condition: Sequence[bool] | None = None) -> GenerationBatch:
        """Prompts laid out as inference lays them out (BOS + text + image header for the codes' grid); a row
        with drop_condition gets the negative prompt, the unconditional branch of Emu3's guidance."""
        texts = [self.negative_prompt if drop_condition is not None and drop_condition[i] else p
                 for i, p in enumerate(prompts)]
        side = math.isqrt(codes.shape[1])
        enc = generation_inputs(self.processor, texts, (side, side))
        return GenerationBatch(enc["input_ids"], enc["attention_mask"], codes.cpu()).to(self.device)

    def generation_loss(self, batch: GenerationBatch) -> torch.Tensor:
        """Teacher-forced per-sample CE of the codes, each position scored over the visual tokens only: the
        distribution the layout constraint samples from (end-of-line positions are forced, so not scored)."""
        m = self.model
        b, n = batch.codes.shape
        side = math.isqrt(n)
        layout = layout_ids(m, batch.codes, side, side)                 # [B, h*(w+1)]
        embeds = m.get_input_embeddings()(torch.cat([batch.input_ids, layout[:, :-1]], dim=1))
        mask = torch.cat([batch.attention_mask, batch.attention_mask.new_ones(b, layout.shape[1] - 1)], dim=1)
        hidden = m.model.text_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions(mask),
                                    use_cache=False).last_hidden_state
        start = batch.input_ids.shape[1] - 1            # the image-token wrapper predicts the first visual token
        pred = hidden[:, start:].reshape(b, side, side + 1, -1)[:, :, :side].reshape(b, n, -1)
        logits = F.linear(pred, m.lm_head.weight.index_select(0, visual_table(m))).float()
        return F.cross_entropy(logits.transpose(1, 2), batch.codes, reduction="none").mean(1)

    # ----------------------------------------------------------------------------------------- set-up

    def lora_target_modules(self) -> list[str]:
        names = [n for n, _ in self.model.named_modules()]
        return [n for n in names if n.startswith("model.text_model.layers.") and n.endswith(LORA_PROJECTIONS)]

    def lora_target_regex(self) -> str:
        alts = "|".join(p.replace(".", r"\.") for p in LORA_PROJECTIONS)
        return rf"model\.text_model\.layers\.\d+\.({alts})"

    def frozen_modules(self) -> list[str]:
        return list(FROZEN)

    def train(self, mode: bool = True) -> None:
        """The LM in train mode (LoRA and residual dropout) while the frozen VQ model stays in eval mode: its
        BatchNorm3d layers would otherwise normalise with batch statistics and overwrite their running ones,
        so training would decode and re-encode differently from inference and the checkpoint (which does not
        carry them) would no longer be the trained model. `Emu3VQVAE.__init__` puts itself in eval mode for
        the same reason."""
        self.model.train(mode)
        self.model.model.vqmodel.eval()

    def freeze(self) -> None:
        for name, module in self.model.named_modules():
            if name in FROZEN:
                module.requires_grad_(False)
