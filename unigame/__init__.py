"""UniGame: self-adversarial post-training for unified multimodal models."""
