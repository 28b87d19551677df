"""Model-neutral pieces of the adapters' batched decoding loops (KV cache, left padding, per-row randomness).

Every adapter writes its own loops rather than calling `model.generate`, because every row must draw its random
numbers from its own generator: an output then depends only on (prompt, seed, params), never on which other
requests shared the batch. Prompts are left padded and positions come from the attention mask, so a padded row
sees the same positions as the same prompt alone.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def visual_dtype(embeds: torch.Tensor, visual: torch.Tensor, precise: bool) -> torch.Tensor:
    """The text embeddings in the dtype the visual tokens are written in. With `precise` (training under autocast)
    float32 visual tokens keep float32: a perturbation added to them must not be rounded away to bf16 before the
    LM's first layer (the residual stream then stays float32)."""
    if precise and visual.dtype == torch.float32 and embeds.dtype != torch.float32:
        return embeds.float()
    return embeds


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def new_cache(lm_config):
    from transformers import DynamicCache

    return DynamicCache(config=lm_config)


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
def text_loop(lm, head: Callable, embed: Callable, embeds: torch.Tensor, attention_mask: torch.Tensor, *,
              max_new_tokens: int, temperature: float, generators: Sequence[torch.Generator],
              eos_id: int | Sequence[int], top_k: int | None = None) -> list[list[int]]:
    """Answer tokens (EOS excluded) for each row of a left-padded batch of prompt embeddings: `lm` is the decoder
    stack (takes inputs_embeds, returns last_hidden_state), `head` maps hidden states to vocabulary logits and
    `embed` token ids to input embeddings."""
    eos = {eos_id} if isinstance(eos_id, int) else set(eos_id)
    batch = embeds.shape[0]
    mask = attention_mask.clone()
    pos = positions(mask)
    cache = new_cache(lm.config)
    out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
    logits = head(out.last_hidden_state[:, -1])
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
        out = lm(inputs_embeds=embed(nxt[:, None]), attention_mask=mask, position_ids=last,
                 past_key_values=cache, use_cache=True)
        logits = head(out.last_hidden_state[:, -1])
    return answers


def resize_pixels(pixels: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Differentiable resize (bicubic with antialias, like the processors' PIL resize) of [B, 3, H, W]."""
    h, w = (size, size) if isinstance(size, int) else size
    if pixels.shape[-2] == h and pixels.shape[-1] == w:
        return pixels
    return F.interpolate(pixels, size=(h, w), mode="bicubic", align_corners=False, antialias=True)


def per_row_loss(logits: torch.Tensor, target: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Mean token cross-entropy per row: logits [T, V] and targets [T] of the tokens kept, `rows` [T] the row of
    each token; rows without a token get 0."""
    tok_loss = F.cross_entropy(logits.float(), target, reduction="none")
    total = torch.zeros(n_rows, device=tok_loss.device).index_add(0, rows, tok_loss)
    count = torch.zeros(n_rows, device=tok_loss.device).index_add(0, rows, torch.ones_like(tok_loss))
    return total / count.clamp(min=1)
