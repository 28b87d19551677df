"""Builders for small Janus models: config, word-level tokenizer, processor and chat template.

Used by the pretraining script (the bundled `tiny-janus`) and by tests (random-config models built on the fly), so
both go through exactly the files and code path a real Janus-Pro checkpoint uses: `config.json`, safetensors
weights, a tokenizer with Janus's special tokens, a `JanusProcessor` with a chat template.

The tokenizer is word level and case preserving: the embedded world speaks a closed vocabulary, so every word of
its captions, questions and task templates gets one id, and an answer such as "A" (an option letter) stays distinct
from the article "a" (MMMU's official parser is case sensitive).
"""
from __future__ import annotations

import re
from typing import Iterable

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
UNK = "<unk>"
IMAGE = "<image_placeholder>"
BOI = "<begin_of_image>"
EOI = "<end_of_image>"
USER = "<|User|>"
ASSISTANT = "<|Assistant|>"
SPECIALS = (PAD, BOS, EOS, UNK, IMAGE, BOI, EOI, USER, ASSISTANT)

# Same conversation layout as Janus-Pro's own template ("<|User|>: <image_placeholder>\n{text}\n\n<|Assistant|>:"),
# without its default system prompt, which would only lengthen every sequence of a tiny model.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role']|lower == 'user' %}<|User|>: "
    "{% elif message['role']|lower == 'assistant' %}<|Assistant|>: "
    "{% else %}{{ message['role'].capitalize() }}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image_placeholder>{{ '\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role']|lower == 'user' %}{{ '\\n\\n' }}{% else %}" + EOS + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)

# the pre-tokenizer below: split on whitespace, then every ASCII punctuation character is a word of its own
_PUNCT = r"!-/:-@\[-`{-~"
_WORD = re.compile(rf"[^\s{_PUNCT}]+|[{_PUNCT}]")


def words_of(texts: Iterable[str]) -> set[str]:
    """The words the tokenizer's pre-tokenizer produces for these texts (split on spaces and punctuation)."""
    out: set[str] = set()
    for t in texts:
        out.update(_WORD.findall(t))
    return out


def build_tokenizer(words: Iterable[str]):
    """A fast word-level tokenizer over `words` plus Janus's special tokens; BOS is added to every encoding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    # ":" comes from the chat template itself ("<|User|>: ...<|Assistant|>:")
    for w in sorted((set(words) | {":"}) - set(SPECIALS)):
        vocab[w] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                pre_tokenizers.Punctuation("isolated")])
    # WordPiece's decoder with cleanup joins words with spaces and removes the space before punctuation
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tk.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B",
                                                      special_tokens=[(BOS, vocab[BOS])])
    tk.add_special_tokens(list(SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, padding_side="left",
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI}, model_max_length=1024)


def build_processor(tokenizer, image_size: int, num_image_tokens: int):
    from transformers import JanusImageProcessor, JanusProcessor

    # mean = std = 0.5 as in Janus-Pro: normalised pixels are exactly the VQ decoder's [-1, 1] range
    image_processor = JanusImageProcessor(size={"height": image_size, "width": image_size},
                                          image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    return JanusProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
                          use_default_system_prompt=False, num_image_tokens=num_image_tokens)


def build_config(tokenizer, *, hidden: int = 128, layers: int = 4, heads: int = 4, kv_heads: int = 2,
                 intermediate: int | None = None, vision_hidden: int = 64, vision_layers: int = 2,
                 vision_heads: int = 4, image_size: int = 64, patch: int = 8, vq_embed: int = 8,
                 codes: int = 512, vq_base: int = 32, vq_latent: int = 64, vq_res_blocks: int = 1,
                 max_positions: int = 512, vocab_size: int | None = None, multiplier: tuple[int, ...] | None = None):
    """A JanusConfig obeying the rules in janus.md: aligners project to the LM width, the VQ latent grid equals the
    vision patch grid (downsampling = patch size), GroupNorm(32)-compatible VQ widths. `vocab_size` pads the LM's
    vocabulary beyond the tokenizer's (Janus-Pro's is 102,400); `multiplier` sets the VQ channel multipliers."""
    from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

    grid = image_size // patch
    downsamples = patch.bit_length() - 1
    if 2 ** downsamples != patch:
        raise ValueError("patch size must be a power of two (the VQ encoder halves the resolution per level)")
    text = LlamaConfig(vocab_size=max(vocab_size or 0, len(tokenizer)), hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = JanusVisionConfig(hidden_size=vision_hidden, num_hidden_layers=vision_layers,
                               num_attention_heads=vision_heads, image_size=image_size, patch_size=patch,
                               projection_dim=hidden, depth=2, num_image_tokens=grid * grid)
    mult = list(multiplier) if multiplier else [1] + [2] * downsamples if downsamples <= 2 else \
        [1, 1] + [2] * (downsamples - 1)
    if len(mult) != downsamples + 1:
        raise ValueError(f"multiplier needs {downsamples + 1} levels for patch size {patch}")
    vq = JanusVQVAEConfig(embed_dim=vq_embed, num_embeddings=codes, latent_channels=vq_latent,
                          base_channels=vq_base, channel_multiplier=mult, num_res_blocks=vq_res_blocks,
                          projection_dim=hidden, image_token_embed_dim=hidden, num_hidden_layers=2)
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq,
                       image_token_id=tokenizer.convert_tokens_to_ids(IMAGE))


def generation_config(tokenizer, guidance_scale: float = 5.0):
    """Generation config with what Janus's image mode needs (janus.md pitfall 4)."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, guidance_scale=guidance_scale,
                            generation_kwargs={"boi_token_id": tokenizer.convert_tokens_to_ids(BOI)})


def build_random_model(words: Iterable[str], seed: int = 0, **config_kw):
    """(model, processor): a randomly initialised small Janus, for tests and as the pretraining start point."""
    import torch
    from transformers import JanusForConditionalGeneration

    tok = build_tokenizer(words)
    config = build_config(tok, **config_kw)
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config)
    model.generation_config = generation_config(tok)
    processor = build_processor(tok, config.vision_config.image_size, config.vision_config.num_image_tokens)
    return model.eval(), processor


TEST_WORDS = ("What color is the circle square triangle ? How many are there Answer question using a single word "
              "or phrase . red blue green yes no A B C D a and of left right above below 0 1 2 3 4")


def save_random_model(folder, words: Iterable[str] | None = None, seed: int = 0, **config_kw):
    """Write a random small Janus as a Hugging Face folder (tests; defaults give a 32 px, 16-token model)."""
    kw = dict(image_size=32, patch=8, hidden=64, layers=2, heads=4, kv_heads=2, vision_hidden=32,
              vision_layers=1, codes=64, vq_base=32, vq_latent=32, max_positions=256)
    kw.update(config_kw)
    model, processor = build_random_model(words if words is not None else words_of([TEST_WORDS]), seed=seed, **kw)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor
