"""UnifiedBench in the world: reference images named "0.png".."99.png"."""
from __future__ import annotations

from PIL import Image

from harness.world.render import render
from harness.world.scene import rng_for, sample_scene


def build_unified_bench(n: int = 100, seed: int = 0, size: int = 64) -> list[tuple[str, Image.Image]]:
    """``n`` reference images as (filename, PIL image) pairs, "0.png" .. f"{n-1}.png"."""
    return [(f"{i}.png", render(sample_scene(rng_for("eval", "unified_bench", seed, i)), size)) for i in range(n)]
