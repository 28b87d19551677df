"""Generation-side mining as the public reference code does it (`--reference-compat`, unigame.md §3).

The perturber trained on the understanding path is also applied to the generation-side token embeddings while
the model samples images: each sampled code's LM-space embedding gets + C(e) before it is fed back. Prompts are
the VQA questions, `candidates` (3) images per question; H = CE + 0.2 * max(0, 0.30 - CLIP cos(image, question));
tau is the 80th percentile of H; a candidate is kept when hard enough OR when its CLIP similarity is low (the
reference keeps those rather than rejecting them); at most the hardest one per question enters the buffer.

Sampling is the hooks' `sample_image_codes` (classifier-free guidance, one generator per row, the perturbation added
to every fed-back generation embedding); a model whose hooks cannot sample so refuses --reference-compat
(`UNSUPPORTED["reference_compat"]`, checked before any weights load).
"""
from __future__ import annotations

import torch

from unigame.buffer import select, threshold


def mine_generated(trainer, step: int, clean, m: dict) -> None:
    """Sample, score, select and push (see the module docstring)."""
    cfg, h = trainer.cfg, trainer.hooks
    rows = clean.rows
    guidance = float(getattr(trainer.loaded.adapter, "defaults", dict)().get("guidance_scale", 5.0))
    hardness, inputs, owners, lows, pixels_all = [], [], [], [], []
    perturb = bf16_add(trainer.perturber) if cfg.delta_dtype == "bfloat16" else trainer.perturber
    for k in range(cfg.candidates):
        gens = [trainer.generator(step, 10 + k, i) for i in range(len(rows))]
        with trainer.amp():
            codes = h.sample_image_codes([r["question"] for r in rows], gens, guidance, perturb=perturb)
        with torch.no_grad(), trainer.amp():
            pixels = h.decode(h.code_embeddings(codes)).float().clamp(-1, 1)
            pv = h.pixels_to_pixel_values(pixels)
            ce = h.answer_loss(clean.batch, h.visual_tokens(pv)).float()
        if cfg.ce_reduction == "batch":     # reference-code defect, on request only: one CE for the micro-batch
            ce = ce.mean().expand_as(ce)
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


def bf16_add(perturber):
    """The reference code's bf16 add (`--delta-dtype bfloat16`), for the sampler, which adds what `perturb` returns
    to the float32 embedding e: return bf16(e) + bf16(C(e)), rounded as the reference rounds it, minus e (the
    sampler's float32 e + that is the bf16 sum, to within a float32 rounding)."""
    def perturb(e: torch.Tensor) -> torch.Tensor:
        return (e.to(torch.bfloat16) + perturber(e).to(torch.bfloat16)).float() - e
    return perturb
