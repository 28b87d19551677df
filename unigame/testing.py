"""Small random models for tests and benchmarks: a Janus and an Emu3 (through the factory's builders) and a CLIP.

Both are written as ordinary Hugging Face folders, so the code under test loads them exactly as it loads real
weights.
"""
from __future__ import annotations

from pathlib import Path


def tiny_janus(folder: str | Path, seed: int = 1, **config) -> Path:
    """A random Janus folder (32 px, 16 visual tokens unless overridden) whose vocabulary covers the world's."""
    from tinyfactory.build import TEST_WORDS, save_random_model, words_of

    from harness.world.text import vocabulary
    from tasks.world import TEXTS

    words = words_of([TEST_WORDS]) | set(vocabulary(TEXTS))
    save_random_model(folder, words=words, seed=seed, **config)
    return Path(folder)


def tiny_emu3(folder: str | Path, seed: int = 1, **config) -> Path:
    """A random Emu3 folder (32 px, 4x4 VQ codes of 64 entries) whose vocabulary covers the world's."""
    from tinyfactory.build import TEST_WORDS, words_of
    from tinyfactory.emu3_build import save_random_emu3

    from harness.world.text import vocabulary
    from tasks.world import TEXTS

    words = words_of([TEST_WORDS]) | set(vocabulary(TEXTS))
    save_random_emu3(folder, words=words, seed=seed, **config)
    return Path(folder)


def tiny_clip(folder: str | Path, seed: int = 0, image_size: int = 32) -> Path:
    """A random transformers CLIP with a word-level tokenizer, small enough to run per training step on a CPU."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from tinyfactory.build import TEST_WORDS, build_tokenizer, words_of

    tok = build_tokenizer(words_of([TEST_WORDS, "a photo of"]))
    config = CLIPConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": image_size, "patch_size": max(8, image_size // 7)},
        projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder
