"""Training hooks (harness.models.hooks.TrainingHooks) for transformers' `JanusForConditionalGeneration`.

The understanding input layout is the inference one: the same chat prompt, the same processor expansion of each
image into begin-of-image + T placeholders + end-of-image, the visual tokens written at the placeholder positions
(`janus_decode.merge_visual`, shared with `understand`), positions taken from the attention mask.

The VQ side uses the L2-normalised codebook that `JanusVQVAE.decode` reads (janus.md pitfall 1): codes are the
cosine-nearest entries of the normalised encoder latents, and decoding continuous code embeddings skips the index
lookup, so gradients reach whatever was added to them.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from harness.models.decoding import per_row_loss
from harness.models.hooks import GenerationBatch, UnderstandingBatch
from harness.models.janus_decode import (image_features, merge_visual, positions, resize_pixels, sample_image_codes,
                                         unconditional_ids)
from harness.models.janus_prompts import generation_prompt, understanding_prompt

LORA_PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
FROZEN = ("model.vision_model", "model.aligner", "model.vqmodel", "model.generation_embeddings",
          "model.generation_aligner", "model.generation_head", "model.language_model.embed_tokens", "lm_head")


class JanusHooks:
    #: z of the decoder-constrained game: the LM-space projection of the VQ codes, where both aligners write
    DEFAULT_INTERFACE = "lm"
    UNSUPPORTED: dict[str, str] = {}

    def __init__(self, model, processor):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def token_dim(self, space: str) -> int:
        """Width of z: "code" (unit-norm VQ code embeddings), "lm" or "visual" (the LM's input width)."""
        if space == "code":
            return int(self.model.config.vq_config.embed_dim)
        return int(self.model.config.text_config.hidden_size)

    # ----------------------------------------------------------------------------------------- understanding

    def understanding_batch(self, images: Sequence, questions: Sequence[str],
                            answers: Sequence[str]) -> UnderstandingBatch:
        tok = self.tokenizer
        rows, labels, flat, counts = [], [], [], []
        for imgs, q, a in zip(images, questions, answers):
            imgs = list(imgs) if isinstance(imgs, (list, tuple)) else [imgs]
            enc = self.processor(text=[understanding_prompt(self.processor, q, len(imgs))], images=imgs or None,
                                 return_tensors="pt")
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

    def visual_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return image_features(self.model, pixel_values.to(self.device, self.model.dtype))

    def _hidden(self, batch: UnderstandingBatch, visual: torch.Tensor | None, all_layers: bool = False):
        """The LM's last hidden state, or with `all_layers` the tuple (embeddings, layer 1, ...) for probes."""
        if visual is None and batch.pixel_values is not None:
            visual = self.visual_tokens(batch.pixel_values)
        embeds = merge_visual(self.model, batch.input_ids, visual,
                              precise=torch.is_autocast_enabled(self.device.type))
        out = self.model.model.language_model(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                                              position_ids=positions(batch.attention_mask), use_cache=False,
                                              output_hidden_states=all_layers)
        return out.hidden_states if all_layers else out.last_hidden_state

    def answer_logits(self, batch: UnderstandingBatch, visual: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.lm_head(self._hidden(batch, visual))

    def answer_loss(self, batch: UnderstandingBatch, visual: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self._hidden(batch, visual)[:, :-1]
        target = batch.labels[:, 1:]
        keep = target != -100
        # the LM head only where there is an answer token: a 100k vocabulary over every prompt position is
        # most of the memory of a real Janus-Pro step
        return per_row_loss(self.model.lm_head(hidden[keep]), target[keep], keep.nonzero()[:, 0], target.shape[0])

    def pixels_to_pixel_values(self, pixels: torch.Tensor) -> torch.Tensor:
        ip = self.processor.image_processor
        mean = torch.tensor(ip.image_mean, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        std = torch.tensor(ip.image_std, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        x = resize_pixels((pixels + 1) / 2, self.image_size)
        return (x - mean) / std

    def reencode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable: images in [-1, 1] -> visual tokens, through the processor's normalisation."""
        return self.visual_tokens(self.pixels_to_pixel_values(pixels))

    # ----------------------------------------------------------------------------------------- generation

    def images_to_pixels(self, images: Sequence) -> torch.Tensor:
        from PIL import Image as PILImage
        import numpy as np

        s = self.image_size
        arrs = [np.asarray(im.convert("RGB").resize((s, s), PILImage.BICUBIC), dtype=np.float32) for im in images]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2) / 127.5 - 1
        return x.to(self.device, self.model.dtype)

    def _codebook(self) -> torch.Tensor:
        return F.normalize(self.model.model.vqmodel.quantize.embedding.weight, dim=-1)

    def vq_encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vq = self.model.model.vqmodel
        h = vq.quant_conv(vq.encoder(pixels.to(self.device, self.model.dtype)))
        z = F.normalize(h.flatten(2).transpose(1, 2), dim=-1)
        codes = (z @ self._codebook().t()).argmax(-1)
        return codes, z

    def code_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        return self._codebook()[codes]

    def generation_embeddings(self, codes_or_weights: torch.Tensor) -> torch.Tensor:
        if not codes_or_weights.is_floating_point():
            return self.model.prepare_embeddings_for_image_generation(codes_or_weights)
        table = self.model.model.generation_embeddings.weight
        return self.model.model.generation_aligner(codes_or_weights.to(table.dtype) @ table)

    def lm_to_code_embeddings(self, lm_embeds: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
        table = self.model.model.generation_aligner(self.model.model.generation_embeddings.weight)
        sim = F.normalize(lm_embeds, dim=-1) @ F.normalize(table, dim=-1).t()
        return torch.softmax(sim.float() / temperature, dim=-1).to(lm_embeds.dtype) @ self._codebook()

    def decode(self, code_embeds: torch.Tensor, quantize: str = "none", temperature: float = 0.05) -> torch.Tensor:
        cb = self._codebook()
        e = code_embeds.to(cb.dtype)
        if quantize == "soft":
            w = torch.softmax((F.normalize(e, dim=-1) @ cb.t()).float() / temperature, dim=-1)
            e = w.to(cb.dtype) @ cb
        elif quantize == "straight_through":
            hard = cb[(F.normalize(e, dim=-1) @ cb.t()).argmax(-1)]
            e = e + (hard - e).detach()
        elif quantize != "none":
            raise ValueError(f"quantize must be none, soft or straight_through, not {quantize!r}")
        b, n, d = e.shape
        side = int(math.isqrt(n))
        vq = self.model.model.vqmodel
        grid = e.transpose(1, 2).reshape(b, d, side, side)
        return vq.decoder(vq.post_quant_conv(grid))

    def generation_batch(self, prompts: Sequence[str], codes: torch.Tensor,
                         drop_condition: Sequence[bool] | None = None) -> GenerationBatch:
        texts = [generation_prompt(self.processor, p) for p in prompts]
        enc = self.processor(text=texts, generation_mode="image", return_tensors="pt", padding=True)
        ids = enc["input_ids"]
        if drop_condition is not None and any(drop_condition):
            tok = self.tokenizer
            null = unconditional_ids(ids, tok.bos_token_id, tok.convert_tokens_to_ids(self.processor.image_start_token),
                                     tok.pad_token_id)
            drop = torch.tensor([bool(d) for d in drop_condition])[:, None]
            ids = torch.where(drop, null, ids)
        return GenerationBatch(ids, enc["attention_mask"], codes.cpu()).to(self.device)

    def generation_loss(self, batch: GenerationBatch) -> torch.Tensor:
        m = self.model
        text = m.get_input_embeddings()(batch.input_ids)
        image = m.prepare_embeddings_for_image_generation(batch.codes[:, :-1])
        embeds = torch.cat([text, image.to(text.dtype)], dim=1)
        mask = torch.cat([batch.attention_mask, batch.attention_mask.new_ones(batch.codes.shape[0],
                                                                              batch.codes.shape[1] - 1)], dim=1)
        hidden = m.model.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions(mask),
                                        use_cache=False).last_hidden_state
        start = batch.input_ids.shape[1] - 1           # the begin-of-image position predicts the first code
        logits = m.model.generation_head(hidden[:, start:]).float()
        return F.cross_entropy(logits.transpose(1, 2), batch.codes, reduction="none").mean(1)

    @torch.no_grad()
    def sample_image_codes(self, prompts: Sequence[str], generators: Sequence[torch.Generator], guidance: float,
                           temperature: float = 1.0, perturb=None) -> torch.Tensor:
        """Codes [B, N] the model draws for `prompts` with classifier-free guidance, each row from its own
        generator; `perturb` is added (float32) to every generated code's embedding before it is fed back
        (the public reference code's generation-side mining)."""
        batch = self.generation_batch(prompts, torch.zeros(len(prompts), 1, dtype=torch.long))
        tok, n = self.tokenizer, len(prompts)
        return sample_image_codes(self.model, batch.input_ids, batch.attention_mask, guidance=[guidance] * n,
                                  temperature=[temperature] * n, generators=generators, bos_id=tok.bos_token_id,
                                  boi_id=tok.convert_tokens_to_ids(self.processor.image_start_token),
                                  pad_id=tok.pad_token_id, perturb=perturb)

    # ----------------------------------------------------------------------------------------- set-up

    def lora_target_modules(self) -> list[str]:
        names = [n for n, _ in self.model.named_modules()]
        return [n for n in names if n.startswith("model.language_model.layers.") and n.endswith(LORA_PROJECTIONS)]

    def lora_target_regex(self) -> str:
        alts = "|".join(p.replace(".", r"\.") for p in LORA_PROJECTIONS)
        return rf"model\.language_model\.layers\.\d+\.({alts})"

    def frozen_modules(self) -> list[str]:
        return list(FROZEN)

    def train(self, mode: bool = True) -> None:
        """Train mode for the whole model (its frozen modules hold no layer whose output depends on the mode
        beyond dropout, which they set to 0)."""
        self.model.train(mode)

    def freeze(self) -> None:
        """Freeze every parameter of the modules listed by `frozen_modules` (LoRA adds the trainable ones)."""
        for name, module in self.model.named_modules():
            if name in FROZEN:
                module.requires_grad_(False)
