"""Prompts, the visual-token layout and batched decoding loops for transformers' `Emu3ForConditionalGeneration`.

Emu3 has one token space: an image is VQ codes written into the LM's own vocabulary as `<|visual token NNNNNN|>`
tokens, row by row, each row closed by the end-of-line token `<|extra_200|>`. Understanding writes those tokens'
embeddings at the `<image>` placeholders the processor expands (`<|image start|>h*w<|image token|>` + h * (w + 1)
placeholders + `<|extra_201|><|image end|>`); generation ends the prompt with `<|image start|>h*w<|image token|>`
and the model must then emit exactly w visual tokens and one end-of-line, h times (the layout constraint that
transformers' example enforces with `prefix_allowed_tokens_fn`; here the loop only samples visual tokens and feeds
the end-of-line itself). Classifier-free guidance uses a negative prompt as the unconditional branch, as Emu3's own
image_generation.py does (the negative prompt carries the same image header).

Both loops are written here rather than taken from `model.generate` so that every row draws from its own generator
(harness.models.decoding): an image depends only on (prompt, seed, params), never on its batch neighbours; and each
understanding image is VQ-encoded on its own at its own size (Emu3's processor pads a batch of differently sized
images to one tensor, and the encoder's convolutions would see the padding).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from harness.models.decoding import generators_for, new_cache, positions, sample_rows, text_loop, visual_dtype

__all__ = ["decode_codes", "decode_text", "generation_inputs", "generators_for", "image_embeddings",
           "layout_ids", "merge_visual", "sample_image_codes", "to_pil", "understanding_prompt", "visual_table"]

SYSTEM_PROMPT = "You are a helpful assistant."
#: the negative prompt of Emu3's own image_generation.py and of transformers' Emu3 example
NEGATIVE_PROMPT = ("lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, "
                   "cropped, worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, "
                   "username, blurry.")


def understanding_prompt(processor, text: str, n_images: int, system_prompt: str = SYSTEM_PROMPT) -> str:
    """The chat-formatted prompt: the system prompt, then "USER: " + the images + the text + " ASSISTANT:"
    (Emu3's "You are a helpful assistant. USER: {image}{text}. ASSISTANT:")."""
    if not getattr(processor, "chat_template", None):
        head = f"{system_prompt} " if system_prompt else ""
        return f"{head}USER: {processor.image_token * n_images}{text.strip()} ASSISTANT:"
    messages = [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}] if system_prompt else []
    messages.append({"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]})
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def generation_inputs(processor, prompts: Sequence[str], grid: tuple[int, int]) -> dict:
    """Left-padded BOS + prompt + `<|image start|>h*w<|image token|>` for every prompt (the processor's own
    image-generation layout, at the requested token grid)."""
    h, w = grid
    if h != w:
        raise ValueError("square images only")
    enc = processor(text=list(prompts), return_for_image_generation=True, image_area=(8 * h) ** 2,
                    padding=True, return_tensors="pt")
    got = [int(v) for v in enc["image_sizes"][0]]
    if got != [h, w]:
        raise ValueError(f"the processor laid out a {got} grid for {grid}")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


# ------------------------------------------------------------------------------------------------ layout

def visual_table(model) -> torch.Tensor:
    """[K] LM token id of each VQ code, in code order (the model's own vocabulary map)."""
    return model.vocabulary_mapping.img2bpe_mapping_tensor.long().to(model.device)


def eol_id(model) -> int:
    return int(model.vocabulary_mapping.eol_token_id)


def layout_ids(model, codes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Codes [B, h*w] -> the token ids the LM reads and writes for that image: [B, h*(w+1)], one end-of-line
    token after every row."""
    table = visual_table(model).to(codes.device)
    rows = table[codes].view(codes.shape[0], h, w)
    eol = torch.full((codes.shape[0], h, 1), eol_id(model), dtype=rows.dtype, device=rows.device)
    return torch.cat([rows, eol], dim=2).flatten(1)


def image_mask(model, input_ids: torch.Tensor) -> torch.Tensor:
    return input_ids == model.vocabulary_mapping.image_token_id


def merge_visual(model, input_ids: torch.Tensor, visual: torch.Tensor | None,
                 precise: bool = False) -> torch.Tensor:
    """Text embeddings with `visual` ([n_images, h*(w+1), width] or a flat [n, width], images in prompt order)
    at the `<image>` placeholders, as `Emu3Model.forward` does, without an in-place write."""
    embeds = model.get_input_embeddings()(input_ids)
    mask = image_mask(model, input_ids)
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


def image_embeddings(model, pixel_values: torch.Tensor, image_sizes) -> torch.Tensor:
    """Flat [sum of h*(w+1), width]: each image VQ-encoded alone at its own size (unpadded), its codes laid out
    with end-of-line tokens and embedded by the LM, as `Emu3Model.get_image_features` does for one image."""
    vq = model.model.vqmodel
    out = []
    for pv, (h, w) in zip(pixel_values, image_sizes):
        h, w = int(h), int(w)
        codes = vq.encode(pv[None, :, :h, :w], image_sizes=[[h, w]]).image_tokens[0]
        out.append(layout_ids(model, codes.flatten()[None], *codes.shape)[0])
    return model.get_input_embeddings()(torch.cat(out))


# ------------------------------------------------------------------------------------------------ loops

@torch.no_grad()
def decode_text(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, visual: torch.Tensor | None, *,
                max_new_tokens: int, temperature: float, generators: Sequence[torch.Generator],
                eos_id: int | Sequence[int], top_k: int | None = None) -> list[list[int]]:
    """Answer tokens (EOS excluded) for each row of a left-padded batch."""
    return text_loop(model.model.text_model, model.lm_head, model.get_input_embeddings(),
                     merge_visual(model, input_ids, visual), attention_mask, max_new_tokens=max_new_tokens,
                     temperature=temperature, generators=generators, eos_id=eos_id, top_k=top_k)


@torch.no_grad()
def sample_image_codes(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, grid: tuple[int, int], *,
                       guidance: Sequence[float], temperature: Sequence[float],
                       generators: Sequence[torch.Generator], top_k: int | None = None) -> torch.Tensor:
    """[B, h*w] VQ codes. `input_ids` holds the B conditional prompts, then (when any guidance differs from 1)
    the B negative prompts; logits are restricted to the visual tokens and guided as uncond + g * (cond - uncond)
    (Emu3's guidance on log-probabilities, then the layout constraint, then top-k: the per-row normalisers
    cancel within the visual tokens)."""
    lm, embed = model.model.text_model, model.get_input_embeddings()
    h, w = grid
    batch = len(generators)
    use_cfg = input_ids.shape[0] == 2 * batch
    scale = torch.tensor(list(guidance), dtype=torch.float32, device=input_ids.device)[:, None]
    table = visual_table(model)
    head = model.lm_head.weight.index_select(0, table)       # logits of the visual tokens only, in code order
    mask = attention_mask
    pos = positions(mask)
    cache = new_cache(lm.config)
    out = lm(inputs_embeds=embed(input_ids), attention_mask=mask, position_ids=pos, past_key_values=cache,
             use_cache=True)
    last = pos[:, -1:]
    codes = torch.zeros(batch, h * w, dtype=torch.long, device=input_ids.device)
    eol = torch.full((batch,), eol_id(model), dtype=torch.long, device=input_ids.device)

    def feed(token_ids):
        nonlocal out, mask, last
        ids = torch.cat([token_ids, token_ids]) if use_cfg else token_ids
        e = embed(ids[:, None])
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        last = last + 1
        out = lm(inputs_embeds=e, attention_mask=mask, position_ids=last, past_key_values=cache, use_cache=True)

    for step in range(h * w):
        logits = F.linear(out.last_hidden_state[:, -1], head).float()
        if use_cfg:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + scale * (cond - uncond)
        nxt = torch.stack([sample_rows(logits[i:i + 1], temperature[i], generators[i:i + 1], top_k)[0]
                           for i in range(batch)])
        codes[:, step] = nxt
        if step == h * w - 1:
            break
        feed(table[nxt])
        if (step + 1) % w == 0:                  # the row is complete: the layout forces end-of-line
            feed(eol)
    return codes


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """VQ codes [B, h*w] -> the decoder's output [B, 3, 8h, 8w], one image at a time (a pixel never depends on
    its batch neighbours)."""
    h, w = grid
    vq = model.model.vqmodel
    return torch.cat([vq.decode(codes[i].view(1, h, w)) for i in range(codes.shape[0])]).float()


def to_pil(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]):
    """[3, H, W] in the processor's normalised space -> PIL RGB, as `Emu3ImageProcessor.postprocess` does
    (unnormalise, x 255, clip, truncate to uint8)."""
    from PIL import Image

    m = torch.tensor(list(mean)).view(3, 1, 1)
    s = torch.tensor(list(std)).view(3, 1, 1)
    arr = ((pixels.detach().float().cpu() * s + m) * 255).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), "RGB")
