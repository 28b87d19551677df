"""Batched decoding loops for transformers' `JanusForConditionalGeneration`, with a KV cache.

Both loops are written here rather than taken from `model.generate` because (janus.md pitfalls 4, 5, 7) image
mode crashes without CFG, silently changes `guidance_scale=None` to 5, and was never checked with prompts of
different lengths; and because every row must draw from its own generator (harness.models.decoding, which also
holds the model-neutral parts: left padding, KV cache, per-row sampling).
"""
from __future__ import annotations

from typing import Sequence

import torch

from harness.models.decoding import (generators_for, new_cache, positions, resize_pixels, sample_rows, text_loop,
                                     visual_dtype)

__all__ = ["decode_codes", "decode_text", "generators_for", "image_features", "merge_visual", "positions",
           "resize_pixels", "sample_image_codes", "sample_rows", "to_pil", "unconditional_ids"]


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Understanding encoder -> aligner: [n_images, tokens_per_image, lm_width], the visual tokens at the shared
    interface (what inference writes into the LM input embeddings)."""
    vision = model.model.vision_model(pixel_values=pixel_values)
    return model.model.aligner(vision.last_hidden_state)


def image_token_mask(model, input_ids: torch.Tensor) -> torch.Tensor:
    return input_ids == model.config.image_token_id


def merge_visual(model, input_ids: torch.Tensor, visual: torch.Tensor | None,
                 precise: bool = False) -> torch.Tensor:
    """Text embeddings with `visual` ([n_images, tokens, width], images in prompt order) written at the image
    placeholder positions, as `JanusModel.forward` does, without an in-place write so gradients reach `visual`."""
    embeds = model.get_input_embeddings()(input_ids)
    mask = image_token_mask(model, input_ids)
    n_slots = int(mask.sum())
    if visual is None:
        if n_slots:
            raise ValueError(f"the prompt has {n_slots} image placeholders but no image was given")
        return embeds
    embeds = visual_dtype(embeds, visual, precise)
    flat = visual.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
    if flat.shape[0] != n_slots:
        raise ValueError(f"{flat.shape[0]} visual tokens for {n_slots} image placeholders")
    return embeds.masked_scatter(mask.unsqueeze(-1), flat)


@torch.no_grad()
def decode_text(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, visual: torch.Tensor | None, *,
                max_new_tokens: int, temperature: float, generators: Sequence[torch.Generator],
                eos_id: int | Sequence[int], top_k: int | None = None) -> list[list[int]]:
    """Answer tokens (EOS excluded) for each row of a left-padded batch."""
    return text_loop(model.model.language_model, model.lm_head, model.get_input_embeddings(),
                     merge_visual(model, input_ids, visual), attention_mask, max_new_tokens=max_new_tokens,
                     temperature=temperature, generators=generators, eos_id=eos_id, top_k=top_k)


def unconditional_ids(input_ids: torch.Tensor, bos_id: int, boi_id: int, pad_id: int) -> torch.Tensor:
    """The CFG unconditional prompt: every token but BOS and BOI becomes PAD; the attention mask is kept
    (janus.md pitfall 5; training's CFG dropout must do the same)."""
    keep = (input_ids == bos_id) | (input_ids == boi_id)
    return torch.where(keep, input_ids, torch.full_like(input_ids, pad_id))


@torch.no_grad()
def sample_image_codes(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                       guidance: Sequence[float], temperature: Sequence[float],
                       generators: Sequence[torch.Generator], bos_id: int, boi_id: int, pad_id: int,
                       top_k: int | None = None, perturb=None) -> torch.Tensor:
    """[batch, num_image_tokens] VQ codes for prompts that end with BOI, with classifier-free guidance
    logits = uncond + g * (cond - uncond), per-row guidance and temperature. `perturb`, when given, maps the
    generation embeddings of the sampled codes to an addition (float32) before they are fed back."""
    lm = model.model.language_model
    n_tokens = model.config.vision_config.num_image_tokens
    batch = input_ids.shape[0]
    scale = torch.tensor(list(guidance), dtype=torch.float32, device=input_ids.device)[:, None]
    use_cfg = bool((scale != 1).any())
    ids = input_ids
    mask = attention_mask
    if use_cfg:
        ids = torch.cat([input_ids, unconditional_ids(input_ids, bos_id, boi_id, pad_id)])
        mask = torch.cat([attention_mask, attention_mask])
    pos = positions(mask)
    cache = new_cache(lm.config)
    out = lm(inputs_embeds=model.get_input_embeddings()(ids), attention_mask=mask, position_ids=pos,
             past_key_values=cache, use_cache=True)
    codes = torch.zeros(batch, n_tokens, dtype=torch.long, device=input_ids.device)
    last = pos[:, -1:]
    for step in range(n_tokens):
        logits = model.model.generation_head(out.last_hidden_state[:, -1]).float()
        if use_cfg:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + scale * (cond - uncond)
        nxt = torch.stack([sample_rows(logits[i:i + 1], temperature[i], generators[i:i + 1], top_k)[0]
                           for i in range(batch)])
        codes[:, step] = nxt
        if step == n_tokens - 1:
            break
        feed = torch.cat([nxt, nxt]) if use_cfg else nxt
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        last = last + 1
        embeds = model.prepare_embeddings_for_image_generation(feed[:, None])
        if perturb is not None:
            embeds = (embeds.float() + perturb(embeds.float())).to(embeds.dtype)
        out = lm(inputs_embeds=embeds, attention_mask=mask,
                 position_ids=last, past_key_values=cache, use_cache=True)
    return codes


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor) -> torch.Tensor:
    """VQ codes -> pixels in [-1, 1], one image at a time so that a pixel never depends on its batch neighbours."""
    return torch.cat([model.model.vqmodel.decode(codes[i:i + 1]) for i in range(codes.shape[0])]).float()


def to_pil(pixels: torch.Tensor):
    """[3, H, W] in [-1, 1] -> PIL RGB (done by hand: the processor's postprocess to PIL raises, pitfall 6)."""
    from PIL import Image

    arr = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), "RGB")

