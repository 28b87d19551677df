"""The training-hooks contract: everything the trainer (`unigame`) needs from a model, and nothing else.

Evaluation never needs it. Each trainable family implements it beside its adapter (janus_hooks.py, emu3_hooks.py)
and its adapter offers `training_hooks()` (loads the weights) and `training_hooks_class()` (no weights: the
trainer checks its flags against the class before loading). The trainer holds no model-specific line: it reads the
model only through these hooks. Spaces (each family maps its own modules onto these roles):

* understanding: image -> `pixel_values` -> the understanding encoder -> **visual tokens** [n_images, T, d_lm],
  written into the LM input embeddings at the image placeholders, exactly where inference writes them
  (Janus: SigLIP -> aligner; Emu3: VQ encoder -> quantiser -> the LM's embeddings of the visual tokens);
* generation: image <-> VQ codes [B, N] <-> **code embeddings** [B, N, d_code] (continuous, what the VQ decoder
  reads) -> pixels in [-1, 1]; codes re-enter the LM as generation embeddings [B, N, d_lm].

The interface tokens z of the game live in one of three spaces, named by `token_dim`: "visual" (the understanding
visual tokens: adv_embed, noise, --no-decode), "lm" (generation embeddings of the image's codes) or "code" (code
embeddings); `DEFAULT_INTERFACE` says which of "lm" / "code" the model's decoder-constrained game uses by default.

Every tensor-to-tensor hook is differentiable, so a perturbation added at either interface receives gradients
through the decoder and the understanding encoder. Losses come back per sample (reduction none, shape [B]).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import torch


@dataclass
class UnderstandingBatch:
    """Left-padded prompt+answer tokens; `labels` is -100 except on answer tokens (and the closing EOS)."""

    input_ids: torch.Tensor           # [B, L]
    attention_mask: torch.Tensor      # [B, L]
    labels: torch.Tensor              # [B, L]
    pixel_values: torch.Tensor | None  # [n_images, 3, H, W], images of all samples in order
    images_per_sample: list[int] = field(default_factory=list)

    def to(self, device) -> "UnderstandingBatch":
        pv = self.pixel_values.to(device) if self.pixel_values is not None else None
        return UnderstandingBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                                  pv, list(self.images_per_sample))


@dataclass
class GenerationBatch:
    """Left-padded generation prompts (ending with begin-of-image) and the target codes to teacher-force."""

    input_ids: torch.Tensor           # [B, L]
    attention_mask: torch.Tensor      # [B, L]
    codes: torch.Tensor               # [B, N]

    def to(self, device) -> "GenerationBatch":
        return GenerationBatch(self.input_ids.to(device), self.attention_mask.to(device), self.codes.to(device))


@runtime_checkable
class TrainingHooks(Protocol):
    model: torch.nn.Module
    #: "lm" or "code": where z lives in the decoder-constrained game unless --interface says otherwise
    DEFAULT_INTERFACE: str
    #: trainer features the model cannot serve -> the one-line reason (e.g. {"reference_compat": "..."})
    UNSUPPORTED: dict

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""

    @property
    def image_size(self) -> int:
        """Side of the square images training uses (clean rows, decoded candidates and buffer alike)."""

    def token_dim(self, space: str) -> int:
        """Width of z in "visual", "lm" or "code" space (known before any data is seen)."""

    # understanding side ----------------------------------------------------------------------------------
    def understanding_batch(self, images: Sequence, questions: Sequence[str],
                            answers: Sequence[str]) -> UnderstandingBatch:
        """Tokenise (images, question, answer) triples with the inference prompt format; `images[i]` is one PIL
        image or a list of them."""

    def visual_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Visual tokens at the shared interface: [n_images, T, d_lm]."""

    def answer_logits(self, batch: UnderstandingBatch, visual: torch.Tensor | None = None) -> torch.Tensor:
        """LM logits [B, L, V] with `visual` (default: computed from batch.pixel_values) at the placeholders."""

    def answer_loss(self, batch: UnderstandingBatch, visual: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample cross-entropy averaged over each sample's answer tokens: [B]."""

    def pixels_to_pixel_values(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable: images in [-1, 1] [B, 3, h, w] -> the understanding encoder's normalised input."""

    def reencode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable: images in [-1, 1] -> visual tokens (pixels_to_pixel_values, then visual_tokens)."""

    # generation side --------------------------------------------------------------------------------------
    def images_to_pixels(self, images: Sequence) -> torch.Tensor:
        """PIL images -> [B, 3, S, S] in [-1, 1] at the generation resolution."""

    def vq_encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes [B, N], the continuous latents [B, N, d_code] the quantiser read) of images in [-1, 1]."""

    def code_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook entries [B, N, d_code] as the VQ decoder reads them."""

    def generation_embeddings(self, codes_or_weights: torch.Tensor) -> torch.Tensor:
        """Codes [B, N] (or soft code weights [B, N, K]) -> LM-space generation embeddings [B, N, d_lm]."""

    def lm_to_code_embeddings(self, lm_embeds: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
        """Soft nearest-codebook map of LM-space generation embeddings back to code embeddings [B, N, d_code]."""

    def decode(self, code_embeds: torch.Tensor, quantize: str = "none", temperature: float = 0.05) -> torch.Tensor:
        """Differentiable decode of continuous code embeddings [B, N, d_code] to pixels [B, 3, S, S] in [-1, 1];
        quantize: "none" (decode as given), "soft" (softmax over the codebook), "straight_through"."""

    def generation_batch(self, prompts: Sequence[str], codes: torch.Tensor,
                         drop_condition: Sequence[bool] | None = None) -> GenerationBatch:
        """Tokenise generation prompts like inference; rows with drop_condition become the CFG null prompt."""

    def generation_loss(self, batch: GenerationBatch) -> torch.Tensor:
        """Teacher-forced per-sample cross-entropy of the image codes: [B]."""

    # optional: generation-side mining (--reference-compat); absent where UNSUPPORTED names "reference_compat"
    # def sample_image_codes(self, prompts, generators, guidance, temperature=1.0, perturb=None) -> codes [B, N]

    # training set-up --------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> None:
        """Put the model in train (or eval) mode the way training needs: frozen modules whose output depends on
        the mode (e.g. Emu3's BatchNorm in its VQ model) stay in eval mode."""

    def lora_target_modules(self) -> list[str]:
        """Full names of the LM backbone's attention and MLP projections (for PEFT `target_modules`)."""

    def frozen_modules(self) -> list[str]:
        """Modules that stay frozen under UniGame (encoder, aligners, VQ model, generation head, embeddings)."""

    def lora_target_regex(self) -> str:
        """The same projections as one regular expression (PEFT `target_modules`)."""
