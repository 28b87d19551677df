"""Generation-side losses: text-to-image supervision on caption data, and RecA's reconstruction alignment.

Both are the hooks' teacher-forced code cross-entropy (`generation_loss`) on the VQ codes of real images.

RecA (reconstruction alignment) conditions generation on the model's own understanding of an image and trains it
to reproduce that image's codes. The original conditions on dense visual embeddings; the hooks' generation
interface takes a text prompt, so here the condition is the model's own caption of the image (greedy, through
the adapter's `understand`, with the current LoRA weights), refreshed every step. This keeps the signal "what
U says about x must regenerate x" and the code path inference uses, at the cost of a text bottleneck.
"""
from __future__ import annotations

import contextlib

import torch

from unigame.data import pil


def image_codes(hooks, images, amp=contextlib.nullcontext) -> torch.Tensor:
    with torch.no_grad(), amp():
        codes, _ = hooks.vq_encode(hooks.images_to_pixels(images))
    return codes


def caption_loss(hooks, rows: list[dict], generators: list[torch.Generator], cfg_drop: float,
                 amp=contextlib.nullcontext) -> torch.Tensor:
    """Mean teacher-forced CE of the codes of each row's image given its caption; a `cfg_drop` share of rows gets
    the model's unconditional prompt, what its classifier-free guidance feeds the unconditional branch (the hooks'
    `generation_batch` builds it: Janus's padded prompt, Emu3's negative prompt)."""
    images = [pil(r["image"]) for r in rows]
    codes = image_codes(hooks, images, amp)
    drop = [float(torch.rand(1, generator=g)) < cfg_drop for g in generators]
    batch = hooks.generation_batch([r["caption"] for r in rows], codes, drop)
    with amp():
        return hooks.generation_loss(batch).float().mean()


def self_captions(adapter, hooks, images, prompt: str, max_tokens: int, train_mode: bool) -> list[str]:
    """The model's own greedy captions of `images` (dropout off while it speaks)."""
    from harness.task import understand
    from harness.types import Image

    hooks.train(False)
    try:
        requests = [understand(prompt, [Image(pil=im)], max_new_tokens=max_tokens).replace(seed=0)
                    for im in images]
        answers = adapter.understand(requests)
    finally:
        if train_mode:
            hooks.train(True)
    return [a.text if a.ok and a.text else prompt for a in answers]


def reca_loss(adapter, hooks, rows: list[dict], cfg, amp=contextlib.nullcontext) -> tuple[torch.Tensor, list[str]]:
    images = [pil(r["image"]) for r in rows]
    captions = self_captions(adapter, hooks, images, cfg.reca_prompt, cfg.reca_max_tokens, cfg.train_mode)
    codes = image_codes(hooks, images, amp)
    batch = hooks.generation_batch(captions, codes)
    with amp():
        return hooks.generation_loss(batch).float().mean(), captions
