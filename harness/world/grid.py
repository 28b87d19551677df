"""Example grid of world scenes with their terse captions (docs/world_grid.png).

Regenerate with ``python -m harness.world.grid [output.png]``; the image depends only on the seed and the
world version.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .render import render
from .scene import rng_for, sample_scene
from .text import captions

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "world_grid.png"


def make_grid(rows: int = 4, cols: int = 4, size: int = 128, seed: int = 0, with_captions: bool = True) -> Image.Image:
    """``rows`` x ``cols`` scenes from the eval stream rendered at ``size`` px, captions underneath."""
    font = ImageFont.load_default()
    text_h = 56 if with_captions else 0
    pad = 6
    grid = Image.new("RGB", (cols * (size + pad) + pad, rows * (size + text_h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i in range(rows * cols):
        scene = sample_scene(rng_for("eval", "grid", seed, i))
        x = pad + (i % cols) * (size + pad)
        y = pad + (i // cols) * (size + text_h + pad)
        grid.paste(render(scene, size), (x, y))
        if with_captions:
            lines = textwrap.wrap(captions(scene)["terse"], width=max(10, size // 6))[:4]
            for k, line in enumerate(lines):
                draw.text((x, y + size + 2 + 12 * k), line, fill=(0, 0, 0), font=font)
    return grid


def main(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else DEFAULT_OUTPUT
    out.parent.mkdir(parents=True, exist_ok=True)
    make_grid().save(out, optimize=True)
    return out


if __name__ == "__main__":
    print(main())
