"""Batched decoding loops for transformers' `JanusForConditionalGeneration`, with a KV cache.

Both loops are written here rather than taken from `model.generate` because (janus.md pitfalls 4, 5, 7) image
mode crashes without CFG, silently changes `guidance_scale=None` to 5, and was never checked with prompts of
different lengths; and because every row must draw its random numbers from its own generator, so that an output
depends only on (prompt, seed, params), never on which other requests shared the batch.

Prompts are left padded: positions come from the attention mask, so a padded row sees the same positions as the
same prompt alone.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Understanding encoder -> aligner: [n_images, tokens_per_image, lm_width], the visual tokens at the shared
    interface (what inference writes into the LM input embeddings)."""
    vision = model.model.vision_model(pixel_values=pixel_values)
    return model.model.aligner(vision.last_hidden_state)


def image_token_mask(model, input_ids: torch.Tensor) -> torch.Tensor:
    return input_ids == model.config.image_token_id


def merge_visual(model, input_ids: torch.Tensor, visual: torch.Tensor | None) -> torch.Tensor:
    """Text embeddings with `visual` ([n_images, tokens, width], images in prompt order) written at the image
    placeholder positions, as `JanusModel.forward` does, without an in-place write so gradients reach `visual`."""
    embeds = model.get_input_embeddings()(input_ids)
    mask = image_token_mask(model, input_ids)
    n_slots = int(mask.sum())
    if visual is None:
        if n_slots:
            raise ValueError(f"the prompt has {n_slots} image placeholders but no image was given")
        return embeds
    flat = visual.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
    if flat.shape[0] != n_slots:
        raise ValueError(f"{flat.shape[0]} visual tokens for {n_slots} image placeholders")
    return embeds.masked_scatter(mask.unsqueeze(-1), flat)


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def new_cache(model):
    from transformers import DynamicCache

    return DynamicCache(config=model.model.language_model.config)


def generators_for(seeds: Sequence[int | None], device) -> list[torch.Generator]:
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s or 0) % (2 ** 63))
        gens.append(g)
    return gens


def sample_rows(logits: torch.Tensor, temperature: float, generators: Sequence[torch.Generator],
                top_k: int | None = None, rows: Sequence[int] | None = None) -> torch.Tensor:
    """One token per row; temperature 0 is greedy. Each row draws only from its own generator (and only when it
    is listed in `rows`), so its draws never depend on the rest of the batch."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    out = probs.argmax(-1)
    for i in (range(len(generators)) if rows is None else rows):
        out[i] = torch.multinomial(probs[i], 1, generator=generators[i])[0]
    return out


@torch.no_grad()
def decode_text(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, visual: torch.Tensor | None, *,
                max_new_tokens: int, temperature: float, generators: Sequence[torch.Generator],
                eos_id: int | Sequence[int], top_k: int | None = None) -> list[list[int]]:
    """Answer tokens (EOS excluded) for each row of a left-padded batch."""
    lm = model.model.language_model
    eos = {eos_id} if isinstance(eos_id, int) else set(eos_id)
    batch = input_ids.shape[0]
    embeds = merge_visual(model, input_ids, visual)
    mask = attention_mask.clone()
    pos = positions(mask)
    cache = new_cache(model)
    out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
    logits = model.lm_head(out.last_hidden_state[:, -1])
    answers: list[list[int]] = [[] for _ in range(batch)]
    live = list(range(batch))
    last = pos[:, -1:]
    for _ in range(max_new_tokens):
        nxt = sample_rows(logits, temperature, generators, top_k, rows=live)
        for i in list(live):
            tok = int(nxt[i])
            if tok in eos:
                live.remove(i)
            else:
                answers[i].append(tok)
        if not live or len(answers[live[0]]) >= max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        last = last + 1
        out = lm(inputs_embeds=model.get_input_embeddings()(nxt[:, None]), attention_mask=mask, position_ids=last,
                 past_key_values=cache, use_cache=True)
        logits = model.lm_head(out.last_hidden_state[:, -1])
    return answers


def unconditional_ids(input_ids: torch.Tensor, bos_id: int, boi_id: int, pad_id: int) -> torch.Tensor:
    """The CFG unconditional prompt: every token but BOS and BOI becomes PAD; the attention mask is kept
    (janus.md pitfall 5; training's CFG dropout must do the same)."""
    keep = (input_ids == bos_id) | (input_ids == boi_id)
    return torch.where(keep, input_ids, torch.full_like(input_ids, pad_id))


@torch.no_grad()
def sample_image_codes(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                       guidance: Sequence[float], temperature: Sequence[float],
                       generators: Sequence[torch.Generator], bos_id: int, boi_id: int, pad_id: int,
                       top_k: int | None = None) -> torch.Tensor:
    """[batch, num_image_tokens] VQ codes for prompts that end with BOI, with classifier-free guidance
    logits = uncond + g * (cond - uncond), per-row guidance and temperature."""
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
    cache = new_cache(model)
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
        out = lm(inputs_embeds=model.prepare_embeddings_for_image_generation(feed[:, None]), attention_mask=mask,
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


def resize_pixels(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable square resize (bicubic with antialias, like the processor) of [B, 3, H, W]."""
    if pixels.shape[-1] == size and pixels.shape[-2] == size:
        return pixels
    return F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
