"""Embedded benchmark world: procedurally generated shape scenes with exact ground truth.

Everything here is numpy + PIL (+ scipy.ndimage), importable without torch. Main entry points:

* ``sample_scene``, ``rng_for`` (scene.py); ``render``, ``Shift``, ``SHIFTS`` (render.py)
* ``parse``, ``parse_scene`` (parse.py): the GenEval-style detector of the world
* ``captions``, ``vocabulary``, ``tokenize``, ``training_examples`` / ``iter_examples`` (text.py)
* ``answer_question`` (questions.py), ``answer_choice`` (choices.py): ground truth for any world question
* ``wise_judge``, ``scene_similarity``, ``matches_scene`` (judge.py): rule scorers

Each benchmark's dataset in its own schema is built from this library by a builder that lives with the benchmark
(tasks/<benchmark>/world.py; the table is tasks/world.py). ``WORLD_VERSION`` changes whenever generated content
(scenes, images, texts, those builders' rows) would change.
"""
WORLD_VERSION = "1"

from .scene import Obj, Scene, rng_for, relation, sample_scene  # noqa: E402
from .render import SHIFTS, Shift, object_masks, render  # noqa: E402
from .parse import ParseResult, parse, parse_scene  # noqa: E402
from .questions import answer_question  # noqa: E402
from .choices import answer_choice  # noqa: E402
from .text import captions, iter_examples, tokenize, training_examples, vocabulary  # noqa: E402
from .judge import matches_scene, scene_similarity, wise_judge  # noqa: E402

__all__ = ["WORLD_VERSION", "Obj", "Scene", "rng_for", "relation", "sample_scene", "SHIFTS", "Shift",
           "object_masks", "render", "ParseResult", "parse", "parse_scene", "answer_question", "answer_choice",
           "captions", "iter_examples", "tokenize", "training_examples", "vocabulary",
           "matches_scene", "scene_similarity", "wise_judge"]
