"""Generation-side mining as the public reference code does it (`--reference-compat`, unigame.md §3).

The perturber trained on the understanding path is also applied to the generation-side token embeddings while
the model samples images: each sampled code's LM-space embedding gets + C(e) before it is fed back. Prompts are
the VQA questions, `candidates` (3) images per question; H = CE + 0.2 * max(0, 0.30 - CLIP cos(image, question));
tau is the 80th percentile of H; a candidate is kept when hard enough OR when its CLIP similarity is low (the
reference keeps those rather than rejecting them); at most the hardest one per question enters the buffer.

The sampling loop is Janus-specific (it needs the LM's KV cache and the generation head, which the hooks do not
expose); it follows harness.models.janus_decode's loop, with classifier-free guidance, per-row generators.
"""
from __future__ import annotations

import torch

from unigame.buffer import select, threshold


@torch.no_grad()
def sample_codes(hooks, prompts: list[str], perturb, generators, guidance: float,
                 temperature: float = 1.0) -> torch.Tensor:
    from harness.models.janus_decode import new_cache, positions, sample_rows, unconditional_ids

    m, tok = hooks.model, hooks.tokenizer
    lm = m.model.language_model
    batch = hooks.generation_batch(prompts, torch.zeros(len(prompts), 1, dtype=torch.long))
    boi = tok.convert_tokens_to_ids(hooks.processor.image_start_token)
    ids = torch.cat([batch.input_ids, unconditional_ids(batch.input_ids, tok.bos_token_id, boi, tok.pad_token_id)])
    mask = torch.cat([batch.attention_mask, batch.attention_mask])
    pos = positions(mask)
    cache = new_cache(m)
    out = lm(inputs_embeds=m.get_input_embeddings()(ids), attention_mask=mask, position_ids=pos,
             past_key_values=cache, use_cache=True)
    n, b = int(m.config.vision_config.num_image_tokens), len(prompts)
    codes = torch.zeros(b, n, dtype=torch.long, device=ids.device)
    last = pos[:, -1:]
    for step in range(n):
        logits = m.model.generation_head(out.last_hidden_state[:, -1]).float()
        logits = logits[b:] + guidance * (logits[:b] - logits[b:])
        nxt = torch.stack([sample_rows(logits[i:i + 1], temperature, generators[i:i + 1])[0] for i in range(b)])
        codes[:, step] = nxt
        if step == n - 1:
            break
        emb = hooks.generation_embeddings(nxt[:, None]).float()
        emb = (emb + perturb(emb)).to(m.dtype)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        last = last + 1
        out = lm(inputs_embeds=torch.cat([emb, emb]), attention_mask=mask, position_ids=last,
                 past_key_values=cache, use_cache=True)
    return codes


def mine_generated(trainer, step: int, clean, m: dict) -> None:
    """Sample, score, select and push (see the module docstring)."""
    cfg, h = trainer.cfg, trainer.hooks
    rows = clean.rows
    guidance = float(getattr(trainer.loaded.adapter, "defaults", dict)().get("guidance_scale", 5.0))
    hardness, inputs, owners, lows, pixels_all = [], [], [], [], []
    for k in range(cfg.candidates):
        gens = [trainer.generator(step, 10 + k, i) for i in range(len(rows))]
        with trainer.amp():
            codes = sample_codes(h, [r["question"] for r in rows], trainer.perturber, gens, guidance)
        with torch.no_grad(), trainer.amp():
            pixels = h.decode(h.code_embeddings(codes)).float().clamp(-1, 1)
            pv = h.pixels_to_pixel_values(pixels)
            ce = h.answer_loss(clean.batch, h.visual_tokens(pv)).float()
        verdict = trainer.filter.check(rows, pixels, clean.visual, clean.visual, clean.gen_pixels)
        hardness.append(ce.cpu() + verdict.hinge)
        lows.append(verdict.low_clip)
        inputs.append(pv.detach().cpu())
        pixels_all.append(pixels.cpu())
        owners.extend(range(len(rows)))
    hardness_t = torch.cat(hardness)
    tau = threshold(trainer.dist.gather(hardness_t), cfg.tau_quantile)
    chosen = select(hardness_t, torch.ones_like(hardness_t, dtype=torch.bool), tau, cfg.select_rule,
                    torch.cat(lows))
    best: dict[int, int] = {}       # top-1 per question among the chosen candidates
    for j in chosen.nonzero().flatten().tolist():
        i = owners[j]
        if i not in best or hardness_t[j] > hardness_t[best[i]]:
            best[i] = j
    keep = torch.zeros_like(chosen)
    keep[list(best.values())] = True
    all_rows = [rows[i] for i in owners]
    trainer.push(step, all_rows, hardness_t, None, keep, m, inputs=torch.cat(inputs), kind="pixels")
    m.update(candidates=len(owners), passed=int(keep.sum()), tau=tau)
