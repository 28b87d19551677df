"""Scorers: models and rules that score outputs (CLIP, detectors, judges, the world's parser...).

Each is registered lazily by name; tasks ask for them with `harness.task.score(name, kind, ...)`.
"""
from __future__ import annotations

from harness.errors import HarnessError
from harness.registry import SCORERS
from harness.runner import Scorer

# Built-in scorers, declared lazily: listing them imports nothing heavy. Weights load on first use.
SCORERS.add("clip", "harness.scorers.clip:CLIPScorer",
            "CLIP (transformers, openai/clip-vit-large-patch14): embed, embed_text, classify")
SCORERS.add("clip_openclip", "harness.scorers.openclip:OpenCLIPScorer",
            "CLIP (open_clip ViT-L-14 'openai', GenEval's colour classifier): embed, embed_text, classify")
SCORERS.add("siglip", "harness.scorers.siglip:SigLIPScorer",
            "SigLIP image embeddings (google/siglip-so400m-patch14-384): embed")
SCORERS.add("dinov2", "harness.scorers.dinov2:DINOv2Scorer",
            "DINOv2 CLS embeddings (facebook/dinov2-large): embed")
SCORERS.add("dinov3", "harness.scorers.dinov3:DINOv3Scorer",
            "DINOv3 CLS embeddings (facebook/dinov3-vitl16-pretrain-lvd1689m): embed")
SCORERS.add("longclip", "harness.scorers.longclip:LongCLIPScorer",
            "LongCLIP-L image embeddings (BeichenZhang/LongCLIP-L longclip-L.pt): embed")
SCORERS.add("dreamsim", "harness.scorers.dreamsim:DreamSimScorer",
            "DreamSim ensemble perceptual distance: distance (+ similarity = 1 - d), embed")
SCORERS.add("detector", "harness.scorers.detector:DetectorScorer",
            "Mask2Former Swin-S COCO instances (transformers; GenEval detector stand-in): detect")
SCORERS.add("judge", "harness.scorers.judge:JudgeScorer",
            "vision-language judge over an OpenAI-compatible chat API (default gpt-4o-2024-05-13): judge")
SCORERS.add("judge_local", "harness.scorers.judge_local:LocalJudgeScorer",
            "vision-language judge on local transformers weights (default Qwen2.5-VL-7B-Instruct): judge")


def make_scorer(name: str, args: dict | None = None) -> Scorer:
    factory = SCORERS.load(name)
    try:
        return factory(**(args or {}))
    except TypeError as e:
        raise HarnessError(f"--scorer-args for {name}: {e}") from None


# --- the embedded world's rule scorers (stand-ins for detector, judge and backbones on --data shapes) ----------
SCORERS.add("world_detector", "harness.scorers.world:WorldDetector",
            "the world's exact scene parser as a GenEval detector, with each object's colour: detect")
SCORERS.add("world_judge", "harness.scorers.world:WorldJudge",
            "the world's WISE rule judge, answering in the legacy judge's text format: judge")
SCORERS.add("world_scene", "harness.scorers.world:WorldScene",
            "the world's scene similarity (object-set F1) of two images: compare")
# --- end of the world's scorers --------------------------------------------------------------------------------
