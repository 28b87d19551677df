"""Tiny random-weight models for the composite adapter, built offline from configs (no download): a Qwen2-VL
image-text-to-text folder with its processor, tokenizer and chat template, and a Stable Diffusion text-to-image
pipeline folder. Real transformers / diffusers classes, so the adapter runs its real loading and decoding code."""
from __future__ import annotations

from pathlib import Path

WORDS = ("red green blue yellow purple black circle square triangle what color shape is the a of there how many "
         "one two three four left right above below small large picture describe image").split()
VLM_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>", "<unk>"]
#: Qwen's chat layout, images first, enough for the adapter's prompts (system, user with images, generation prompt)
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}"
                 "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
                 "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                 "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _word_tokenizer(special: list[str], **tokens):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*special, *WORDS, "user", "assistant", "system", "?", ".", ","])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(special)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **tokens), vocab


def save_tiny_vlm(path: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide Qwen2-VL with an 8-pixel-patch vision tower, saved with its processor."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tokenizer, vocab = _word_tokenizer(VLM_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    grid = {"patch_size": 8, "merge_size": 2, "temporal_patch_size": 2}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size={"shortest_edge": 16 * 16, "longest_edge": 64 * 64}, **grid),
        video_processor=Qwen2VLVideoProcessor(**grid), tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, eos_token_id=vocab["<|im_end|>"],
                         pad_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|endoftext|>"],
                         rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e4}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=8, spatial_merge_size=2,
                           temporal_patch_size=2, mlp_ratio=2),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    with torch.no_grad():        # random weights give flat logits; a larger head makes greedy answers clear-cut
        model.lm_head.weight.mul_(20)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def save_tiny_t2i(path: Path, seed: int = 0, sample_size: int = 8) -> Path:
    """A Stable Diffusion pipeline with a 2-block UNet, a 2-block VAE (16 px images at sample size 8), a 1-layer CLIP
    text encoder, a word-level tokenizer and a DDIM scheduler."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4, sample_size=2 * sample_size)
    tokenizer, vocab = _word_tokenizer(["<|startoftext|>", "<|endoftext|>", "<unk>"], bos_token="<|startoftext|>",
                                       eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(path, safe_serialization=True)
    return Path(path)
