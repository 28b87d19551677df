"""Losses for pretraining the tiny models: VQ autoencoder, packed understanding, teacher-forced generation.

Packed understanding: one image prefix (for Janus "<|User|>: " + begin-of-image, placeholders, end-of-image; for
Emu3 the system prompt, "USER: " and the image's token layout) is followed by several question/answer segments; a block mask lets every segment see the prefix and itself only, and each segment
restarts its positions where the prefix ends, so every segment is computed exactly as the single-question prompt
inference sends (`understanding_prompt`), while the image prefix is encoded once for all of them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.models.janus_prompts import understanding_prompt
from harness.models.janus_decode import image_features


# ------------------------------------------------------------------------------------------------ VQ

def quantise(vq, pixels: torch.Tensor):
    """Own L2-normalised quantiser with a straight-through estimator (janus.md pitfall 1): cosine-nearest
    entry of the normalised codebook, the same rule `JanusHooks.vq_encode` tokenises with."""
    h = vq.quant_conv(vq.encoder(pixels))
    b, d, hh, ww = h.shape
    z = F.normalize(h.permute(0, 2, 3, 1).reshape(-1, d), dim=-1)
    cb = F.normalize(vq.quantize.embedding.weight, dim=-1)
    idx = (z @ cb.t()).argmax(-1)
    q = cb[idx]
    codebook_loss = (q - z.detach()).pow(2).sum(-1).mean()
    commit_loss = (z - q.detach()).pow(2).sum(-1).mean()
    zq = z + (q - z).detach()
    return zq.view(b, hh, ww, d).permute(0, 3, 1, 2), idx.view(b, -1), codebook_loss + 0.25 * commit_loss, z


def vq_loss(vq, pixels: torch.Tensor, weights: torch.Tensor):
    """(loss, reconstruction, codes, latents): weighted L2 + L1 reconstruction plus codebook/commitment."""
    zq, idx, q_loss, z = quantise(vq, pixels)
    recon = vq.decoder(vq.post_quant_conv(zq))
    return reconstruction_loss(recon, pixels, weights) + q_loss, recon, idx, z


def reconstruction_loss(recon: torch.Tensor, pixels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel weighted L2 + 0.5 L1 (object pixels weigh more, `data.vq_example`); both architectures' VQ."""
    err = recon - pixels
    return (weights[:, None] * (err.pow(2) + 0.5 * err.abs())).mean()


def restart_dead_codes(vq, usage: torch.Tensor, latents: torch.Tensor, rng: np.random.Generator) -> int:
    """Point unused codebook entries at random encoder outputs of the current batch; returns how many."""
    dead = (usage == 0).nonzero()[:, 0]
    if len(dead) == 0:
        return 0
    pick = torch.from_numpy(rng.integers(0, latents.shape[0], size=len(dead)))
    with torch.no_grad():
        vq.quantize.embedding.weight[dead] = latents.detach()[pick] + 0.01 * torch.from_numpy(
            rng.standard_normal((len(dead), latents.shape[1])).astype(np.float32))
    return len(dead)


def images_to_tensor(images) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1


# ------------------------------------------------------------------------------------------------ understanding

class Packer:
    """Turns {"images", "segments": [(prompt, answer)]} examples into packed, block-masked LM batches.

    `prompt(processor, text, n_images)` is the architecture's inference prompt (Janus' by default), and
    `image_size` the side its processor gives the (square) world images."""

    def __init__(self, processor, prompt=understanding_prompt, image_size: int | None = None):
        self.processor = processor
        self.tok = processor.tokenizer
        self.prompt = prompt
        self.image_size = image_size or processor.image_processor.size["height"]
        self._prefix: dict[int, list[int]] = {}
        self._tail = self._tail_ids()

    def _tail_ids(self) -> list[int]:
        # what the chat template puts after the user text: "<|Assistant|>:" (after the "\n\n" separator)
        full = self.tok(self.prompt(self.processor, "x", 0), add_special_tokens=False)["input_ids"]
        x = self.tok("x", add_special_tokens=False)["input_ids"]
        start = max(i for i in range(len(full) - len(x) + 1) if full[i:i + len(x)] == x)
        return full[start + len(x):]

    def prefix(self, n_images: int) -> list[int]:
        """Prompt tokens before the user text: BOS, "<|User|>:", each image's expanded placeholder block."""
        if n_images not in self._prefix:
            from PIL import Image

            size = self.image_size
            blank = [Image.new("RGB", (size, size))] * n_images
            ids = self.processor(text=[self.prompt(self.processor, "x", n_images)], images=blank or None,
                                 return_tensors="pt")["input_ids"][0].tolist()
            x = self.tok("x", add_special_tokens=False)["input_ids"]
            self._prefix[n_images] = ids[:len(ids) - len(x) - len(self._tail)]
        return self._prefix[n_images]

    def segment(self, prompt: str, answer: str) -> tuple[list[int], list[int]]:
        q = self.tok(prompt, add_special_tokens=False)["input_ids"] + list(self._tail)
        a = self.tok(" " + answer.strip(), add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
        return q, a

    def pack(self, examples: list[dict]):
        rows = []
        for ex in examples:
            ids = list(self.prefix(len(ex["images"])))
            seg = [0] * len(ids)
            pos = list(range(len(ids)))
            lab = [-100] * len(ids)
            p = len(ids)
            for k, (prompt, answer) in enumerate(ex["segments"], start=1):
                q, a = self.segment(prompt, answer)
                ids += q + a
                seg += [k] * (len(q) + len(a))
                pos += list(range(p, p + len(q) + len(a)))
                # a token's label is the next token: the last question token predicts the first answer token
                lab += [-100] * (len(q) - 1) + a + [-100]
            rows.append((ids, seg, pos, lab))
        width = max(len(r[0]) for r in rows)
        pad = self.tok.pad_token_id
        ids = torch.tensor([r[0] + [pad] * (width - len(r[0])) for r in rows])
        seg = torch.tensor([r[1] + [-1] * (width - len(r[1])) for r in rows])
        pos = torch.tensor([r[2] + [0] * (width - len(r[2])) for r in rows])
        lab = torch.tensor([r[3] + [-100] * (width - len(r[3])) for r in rows])
        pixels = images_to_tensor([im for ex in examples for im in ex["images"]])
        return {"input_ids": ids, "segments": seg, "positions": pos, "labels": lab,
                "pixel_values": self.normalise(self.processor, pixels)}

    @staticmethod
    def normalise(processor, pixels: torch.Tensor) -> torch.Tensor:
        """[-1, 1] pixels -> the processor's normalisation (the images are already at the model's size)."""
        ip = processor.image_processor
        mean = torch.tensor(ip.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(ip.image_std).view(1, 3, 1, 1)
        return ((pixels + 1) / 2 - mean) / std


def block_mask(segments: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """[B, 1, L, L] additive mask: causal, prefix (segment 0) visible to all, segments blind to each other."""
    s = segments
    L = s.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    same = (s[:, :, None] == s[:, None, :]) | (s[:, None, :] == 0)
    ok = causal & same & (s[:, None, :] >= 0)
    ok |= torch.eye(L, dtype=torch.bool)          # padding rows attend to themselves (no all-masked rows)
    mask = torch.zeros(ok.shape, dtype=dtype)
    mask.masked_fill_(~ok, torch.finfo(dtype).min)
    return mask[:, None]


def packed_answer_loss(lm, lm_head, embeds: torch.Tensor, batch: dict):
    """(loss, accuracy, last hidden states) of a packed batch whose input embeddings are `embeds`: the mean over
    segments of each segment's mean answer-token cross-entropy (long captions do not outweigh one-word answers)."""
    out = lm(inputs_embeds=embeds, attention_mask=block_mask(batch["segments"]), position_ids=batch["positions"],
             use_cache=False)
    labels = batch["labels"]
    keep = labels != -100
    logits = lm_head(out.last_hidden_state[keep]).float()
    tok_loss = F.cross_entropy(logits, labels[keep], reduction="none")
    seg_id = batch["segments"]
    key = keep.nonzero()[:, 0] * (int(seg_id.max()) + 2) + seg_id[keep]
    uniq, inv = torch.unique(key, return_inverse=True)
    sums = torch.zeros(len(uniq)).index_add(0, inv, tok_loss)
    counts = torch.zeros(len(uniq)).index_add(0, inv, torch.ones_like(tok_loss))
    correct = (logits.argmax(-1) == labels[keep]).float()
    return (sums / counts).mean(), float(correct.mean()), out.last_hidden_state


def understanding_loss(model, batch: dict, visual: torch.Tensor | None = None):
    """Janus: (loss, answer-token accuracy) of a packed batch, see `packed_answer_loss`."""
    from harness.models.janus_decode import merge_visual

    if visual is None:
        visual = image_features(model, batch["pixel_values"])
    embeds = merge_visual(model, batch["input_ids"], visual)
    loss, acc, _ = packed_answer_loss(model.model.language_model, model.lm_head, embeds, batch)
    return loss, acc
