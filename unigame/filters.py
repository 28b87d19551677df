"""The semantic filter: a candidate enters the buffer only if it still means what its label says.

* `clip`, text mode (paper): CLIP similarity between the adversarial image and the sample's text (its caption,
  else "question answer"; the reference code uses the question) must reach the threshold. The paper's 0.6 is on the
  CLIPScore scale 2.5 * max(cos, 0) (raw cosines of matching pairs are ~0.2-0.35); `--clip-scale raw` compares
  the raw cosine instead. The scale in force is recorded in every checkpoint's harness.json.
* `clip`, image mode: raw CLIP cosine between the adversarial and the clean image.
* `cosine` (Table 4 ablation): mean per-token cosine between the understanding visual tokens of the candidate and
  of the clean image.
* scene check (the embedded world, decoded candidates): the adversarial image must parse, with the world's exact
  parser, to the same objects (shape, colour, size, grid cell) as the scene the label was computed from.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from unigame.clip import clipscore


@dataclass
class Verdict:
    passed: torch.Tensor              # [B] bool
    hinge: torch.Tensor               # [B] float: the optional CLIP hinge term of H (zeros when off)
    low_clip: torch.Tensor            # [B] bool: raw text cosine under the hinge margin (reference OR rule)
    similarity: torch.Tensor | None   # [B] the filter's score, on the scale it is thresholded on
    scene_ok: torch.Tensor | None     # [B] bool, or None when no scene check ran


class SemanticFilter:
    def __init__(self, cfg, device, scenes_available: bool, clip=None):
        self.cfg = cfg
        self.mode = cfg.filter or "none"
        self.decoded = bool(cfg.decode) or cfg.mine_from == "generation"
        self.clip = clip if clip is not None or not needs_clip(cfg) else load_clip(cfg, device)
        on = {"on": True, "off": False, "auto": scenes_available}[cfg.scene_check]
        self.scene_check = bool(on and self.decoded)

    def describe(self) -> dict:
        out = {"filter": self.mode, "scene_check": self.scene_check}
        if self.mode == "clip":
            out.update(clip_weights=self.cfg.clip_weights, clip_mode=self.cfg.clip_mode,
                       threshold=self.cfg.clip_threshold,
                       scale=("clipscore = 2.5 * max(cos, 0)" if self.cfg.clip_scale == "clipscore"
                              else "raw cosine") if self.cfg.clip_mode == "text" else "raw cosine")
        elif self.mode == "cosine":
            out.update(threshold=self.cfg.cos_threshold, scale="raw cosine of understanding visual tokens")
        if self.cfg.hinge_weight > 0:
            out["hinge"] = f"{self.cfg.hinge_weight} * max(0, {self.cfg.hinge_margin} - raw CLIP cos(image, text))"
        if self.cfg.select_rule == "or":
            # the reference code's rule: nothing is rejected for meaning something else, so say what decides
            out.update(applied=False, scene_check=False,
                       rule="or (reference code): a candidate is pushed when H >= tau or its CLIP similarity is low; "
                            "neither the threshold nor the scene check rejects any")
        return out

    def texts(self, rows: list[dict]) -> list[str]:
        if self.cfg.clip_text == "question":
            return [r["question"] for r in rows]
        return [r.get("caption") or f"{r['question']} {r['answer']}" for r in rows]

    def check(self, rows: list[dict], pixels: torch.Tensor | None, visual: torch.Tensor,
              clean_visual: torch.Tensor, clean_pixels: torch.Tensor | None) -> Verdict:
        n = len(rows)
        passed = torch.ones(n, dtype=torch.bool)
        hinge = torch.zeros(n)
        low = torch.zeros(n, dtype=torch.bool)
        similarity = None
        text_cos = None
        if self.clip is not None and pixels is not None and (self.cfg.clip_mode == "text" or self.cfg.hinge_weight):
            text_cos = self.clip.text_cosine(pixels, self.texts(rows))
            low = text_cos < self.cfg.hinge_margin
            hinge = self.cfg.hinge_weight * (self.cfg.hinge_margin - text_cos).clamp(min=0)
        if self.mode == "clip" and pixels is not None:
            if self.cfg.clip_mode == "text":
                similarity = clipscore(text_cos) if self.cfg.clip_scale == "clipscore" else text_cos
                passed &= similarity >= self.cfg.clip_threshold
            else:
                similarity = self.clip.image_cosine(pixels, clean_pixels)
                passed &= similarity >= self.cfg.clip_threshold
        elif self.mode == "cosine":
            similarity = F.cosine_similarity(visual.float(), clean_visual.float(), dim=-1).mean(-1).cpu()
            passed &= similarity >= self.cfg.cos_threshold
        scene_ok = None
        if self.scene_check and pixels is not None:
            scene_ok = torch.tensor([same_scene(to_pil(px), r.get("scene")) for px, r in zip(pixels, rows)])
            passed &= scene_ok
        return Verdict(passed, hinge.float(), low, similarity, scene_ok)


def needs_clip(cfg) -> bool:
    return cfg.attack != "none" and (cfg.filter == "clip" or cfg.hinge_weight > 0)


def load_clip(cfg, device):
    """The filter's CLIP, or None when the configuration does not use one (load it before the model: a missing
    CLIP should fail in seconds, not after a 7B model has loaded)."""
    if not needs_clip(cfg):
        return None
    from unigame.clip import Clip

    return Clip(cfg.clip_weights, device)


def to_pil(pixels: torch.Tensor):
    """[3, H, W] in [-1, 1] -> PIL RGB, rounded the way the harness saves generated images."""
    from PIL import Image

    arr = ((pixels.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(np.ascontiguousarray(arr.permute(1, 2, 0).numpy()), "RGB")


def scene_key(objects) -> Counter:
    return Counter((o.shape, o.color, o.size, o.cell) for o in objects)


def same_scene(image, scene: dict | None) -> bool:
    """True when the world's parser reads the same objects (shape, colour, size, cell); rows without a scene
    have nothing to check."""
    if scene is None:
        return True
    from harness.world.parse import parse_scene
    from harness.world.scene import Scene

    return scene_key(parse_scene(image).objects) == scene_key(Scene.from_dict(scene).objects)
