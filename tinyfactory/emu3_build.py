"""Builders for small Emu3 models: config, word-level tokenizer with Emu3's special and visual tokens, processor.

Written as ordinary Hugging Face folders that `Emu3ForConditionalGeneration` / `Emu3Processor` load exactly as they
load BAAI/Emu3-Chat-hf and BAAI/Emu3-Gen-hf: `config.json` with the `vocabulary_map` the model reads its image
tokens from, safetensors weights, a tokenizer whose extra special tokens are the ones `Emu3Processor` asks for
(`<image>`, `<|image start|>`, `<|image end|>`, `<|image token|>`, `<|extra_201|>`), the end-of-row token
`<|extra_200|>` and one `<|visual token NNNNNN|>` per VQ code, and the chat template of the -hf checkpoints.

Emu3's processor downsamples by 8 (hard-coded), so the VQ model needs 4 channel levels (2 ** 3 = 8).
"""
from __future__ import annotations

from typing import Iterable

from tinyfactory.build import TEST_WORDS, words_of

BOS = "<|extra_203|>"
EOS = "<|extra_204|>"
PAD = "<|endoftext|>"
UNK = "<unk>"
IMAGE = "<image>"
BOI = "<|image start|>"
EOI = "<|image end|>"
WRAPPER = "<|image token|>"
EOF = "<|extra_201|>"
EOL = "<|extra_200|>"
SPECIALS = (PAD, BOS, EOS, UNK, IMAGE, BOI, EOI, WRAPPER, EOF, EOL)

# the template of the -hf checkpoints: system text as is, "ROLE: ", the images, then the text
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}"
    "{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def visual_token(code: int) -> str:
    return f"<|visual token {code:06d}|>"


def build_tokenizer(words: Iterable[str], codebook_size: int):
    """A fast word-level tokenizer over `words`, Emu3's special tokens and one visual token per code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    # the chat template's "USER:"/"ASSISTANT:" and the generation header "H*W" (digits and "*")
    extra = {"USER", "ASSISTANT", "SYSTEM", ":", "*"} | {str(i) for i in range(129)}
    for w in sorted((set(words) | extra) - set(SPECIALS)):
        vocab[w] = len(vocab)
    visual = [visual_token(k) for k in range(codebook_size)]
    for v in visual:
        vocab[v] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                pre_tokenizers.Punctuation("isolated")])
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    # Emu3's processor writes BOS into the text itself; the tokenizer adds nothing (like Emu3's GPT-style one)
    tk.add_special_tokens(list(SPECIALS) + visual)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, padding_side="left",
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI,
                              "image_wrapper_token": WRAPPER, "eof_token": EOF},
        model_max_length=2048)


def build_processor(tokenizer, image_size: int):
    from transformers import Emu3ImageProcessor, Emu3Processor

    # min = max pixels: every image is resized to image_size ** 2 pixels (aspect kept), as Emu3-Chat-hf does at
    # 512 ** 2; mean = std = 0.5 maps pixels to the VQ model's [-1, 1]
    image_processor = Emu3ImageProcessor(min_pixels=image_size ** 2, max_pixels=image_size ** 2, spatial_factor=8,
                                         image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return Emu3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_config(tokenizer, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                 intermediate: int | None = None, codes: int = 64, embed_dim: int = 4, vq_base: int = 32,
                 vq_latent: int = 4, temporal: int = 1, vq_res_blocks: int = 1, max_positions: int = 512):
    """An Emu3Config whose VQ model downsamples by 8 (what Emu3Processor assumes) and whose vocabulary_map is the
    tokenizer's (the model reads the visual tokens, `<image>` and the end-of-row token from it)."""
    from transformers import Emu3Config, Emu3TextConfig, Emu3VQVAEConfig

    text = Emu3TextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
                          num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                          max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                          attention_dropout=0.0)
    vq = Emu3VQVAEConfig(codebook_size=codes, embed_dim=embed_dim, latent_channels=vq_latent,
                         base_channels=vq_base, channel_multiplier=[1, 1, 1, 1], num_res_blocks=vq_res_blocks,
                         attn_resolutions=[], hidden_size=vq_base, temporal_downsample_factor=temporal)
    return Emu3Config(text_config=text, vq_config=vq, vocabulary_map=dict(tokenizer.get_vocab()))


def generation_config(tokenizer, image_size: int, guidance_scale: float = 3.0, top_k: int | None = None):
    """Generation settings in the checkpoint: guidance scale, sampling, and the generated image's area (the
    processor's own default, 518400 = 720 px, is Emu3-Gen's; the emu3 adapter reads `image_area` from here)."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, guidance_scale=guidance_scale, do_sample=True,
                            top_k=top_k, image_area=image_size ** 2)


def save_random_emu3(folder, words: Iterable[str] | None = None, seed: int = 0, image_size: int = 32, **config_kw):
    """Write a random small Emu3 as a Hugging Face folder (tests: 32 px images, 4x4 VQ codes of 64 entries)."""
    import torch
    from transformers import Emu3ForConditionalGeneration

    codes = int(config_kw.get("codes", 64))
    tok = build_tokenizer(words if words is not None else words_of([TEST_WORDS]), codes)
    config = build_config(tok, **config_kw)
    torch.manual_seed(seed)
    model = Emu3ForConditionalGeneration(config).eval()
    model.generation_config = generation_config(tok, image_size)
    processor = build_processor(tok, image_size)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor

