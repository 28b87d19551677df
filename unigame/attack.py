"""Where the adversary acts, for every method, and the forward pass that scores its candidates.

decode=True (UniGame): the clean image is VQ-encoded to codes; z is their embedding at the generation-side
interface, either the LM-space projection `generation_embeddings(codes)` (interface "lm", mapped back to code
embeddings by the hooks' soft nearest-codebook assignment) or the VQ code embeddings themselves (interface
"code"); the model's hooks name the default (Janus: lm, where both aligners write; Emu3: code, which both of its
branches share). z + delta is decoded by the model's own VQ decoder into an image, which the understanding branch
re-encodes (Janus: SigLIP -> aligner; Emu3: VQ encoder -> straight-through quantiser -> visual-token embeddings)
and answers: the gradient that trains C flows through the decoder and the understanding encoder.

decode=False (adv_embed, noise, --no-decode): z is the understanding visual tokens (the LM input at the image
placeholders) and z + delta goes straight into the LM.

delta is computed and added in float32 (unless the reference code's bf16 add is asked for); only the heavy
forwards (decoder, encoder, LM) run under autocast.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unigame.perturber import relative_norm


@dataclass
class Candidates:
    ce: torch.Tensor                  # [B] per-sample CE on the perturbed input (graph attached when trained)
    penalty: torch.Tensor             # mean ||delta||^2 per token (graph attached)
    inputs: torch.Tensor              # detached, CPU-ready: [B, 3, H, W] pixel values or [B, T, d] visual tokens
    kind: str                         # "pixels" or "visual"
    visual: torch.Tensor              # detached visual tokens of the candidates [B, T, d]
    pixels: torch.Tensor | None       # detached adversarial images in [-1, 1] (decoded candidates only)
    delta_rel: float
    eps: float


class Adversary:
    def __init__(self, cfg, hooks, perturber=None, amp=contextlib.nullcontext):
        self.cfg, self.hooks, self.perturber, self.amp = cfg, hooks, perturber, amp
        self.decode = bool(cfg.decode)
        # fp32 weights: the interface maps run in fp32 too; bf16 weights can only meet fp32 inputs under autocast
        self.precise = (amp if cfg.weights_dtype == "bfloat16"
                        else lambda: torch.autocast(hooks.device.type, enabled=False))

    @property
    def token_dim(self) -> int:
        """Width of z, known before any data is seen (the perturber is built with it)."""
        return self.hooks.token_dim(self.cfg.interface if self.decode else "visual")

    # ------------------------------------------------------------------------------------------------ z
    @torch.no_grad()
    def interface_tokens(self, clean) -> torch.Tensor:
        """z for this batch (no gradient: everything upstream of z is frozen)."""
        h = self.hooks
        if not self.decode:
            return clean.visual.float()
        with self.amp():
            codes, _ = h.vq_encode(clean.gen_pixels)
        with self.precise():
            z = h.generation_embeddings(codes) if self.cfg.interface == "lm" else h.code_embeddings(codes)
        return z.float()

    def _add(self, z: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        if self.cfg.delta_dtype == "bfloat16":      # reference-code defect, on request only
            return (z.to(torch.bfloat16) + delta.to(torch.bfloat16)).float()
        return z + delta

    def _decode(self, zp: torch.Tensor) -> torch.Tensor:
        h = self.hooks
        with self.precise():
            emb = h.lm_to_code_embeddings(zp, self.cfg.soft_temperature) if self.cfg.interface == "lm" else zp
        with self.amp():
            x = h.decode(emb, quantize="none")
        return x.float().clamp(-1, 1)

    # ------------------------------------------------------------------------------------------------ forward
    def run(self, clean, z: torch.Tensor, delta: torch.Tensor) -> Candidates:
        """Per-sample CE of the understanding branch on z + delta (through the decoder when decode=True)."""
        h = self.hooks
        zp = self._add(z, delta)
        pixels = None
        if self.decode:
            pixels = self._decode(zp)
            with self.amp():
                pv = h.pixels_to_pixel_values(pixels)
                visual = h.visual_tokens(pv)
            inputs, kind = pv, "pixels"
        else:
            visual = inputs = zp
            kind = "visual"
        with self.amp():
            ce = h.answer_loss(clean.batch, visual).float()
        if self.cfg.ce_reduction == "batch":        # reference-code defect: one CE for the whole micro-batch
            ce = ce.mean().expand_as(ce)
        penalty = delta.float().pow(2).sum(-1).mean()
        eps = float(self.perturber.eps.detach()) if self.perturber is not None else float(delta.norm(dim=-1).mean())
        return Candidates(ce, penalty, inputs.detach(), kind, visual.detach(),
                          None if pixels is None else pixels.detach(), relative_norm(delta, z), eps)

    def adversarial(self, clean, z: torch.Tensor) -> Candidates:
        return self.run(clean, z, self.perturber(z))

    def noise(self, clean, z: torch.Tensor, generators: list[torch.Generator]) -> Candidates:
        """Random Gaussian directions with the perturber's largest budget: every token's noise has norm eps_max."""
        g = torch.stack([torch.randn(z.shape[1:], generator=gen) for gen in generators]).to(z.device)
        delta = self.cfg.eps_max * F.normalize(g, dim=-1)
        with torch.no_grad():
            return self.run(clean, z, delta)
