"""Janus prompts in the checkpoint's chat format (no torch: the adapter and the training hooks both use them)."""
from __future__ import annotations


def understanding_prompt(processor, text: str, n_images: int) -> str:
    """The user's full prompt in the checkpoint's chat format, images first (Janus's own layout)."""
    if not getattr(processor, "chat_template", None):   # Janus's conversation format, for folders without one
        return "<|User|>: " + "<image_placeholder>\n" * n_images + text.strip() + "\n\n<|Assistant|>:"
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def generation_prompt(processor, text: str) -> str:
    """The chat-formatted prompt; the processor appends the begin-of-image token in image mode."""
    if not getattr(processor, "chat_template", None):
        return "<|User|>: " + text.strip() + "\n\n<|Assistant|>:"
    return processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": text}]}],
                                         add_generation_prompt=True)
