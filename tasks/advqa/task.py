"""AdVQA validation (`advqa_val`): the VQAv2 task on the Human-Adversarial VQA questions."""
from __future__ import annotations

from tasks.vqav2.task import VQAv2Val


class AdVQAVal(VQAv2Val):
    """AdVQA val (Sheng et al., NeurIPS 2021; 10,000 questions on COCO val2017 images), VQA accuracy.

    Not the "Adversarial VQA" of Li et al. (ICCV 2021). Default hub source: HuggingFaceM4/AdVQA split `val`, a
    script dataset that recent `datasets` releases cannot run; give a local copy in the VQAv2 schema (question_id,
    question, image, answers[{answer, ...}] or answers[str], optional answer_type / question_type) with --data
    PATH. Documents, doc ids (str(question_id)), prompt, generation and both scoring profiles are exactly those of
    vqav2_val (no lmms-eval or VLMEvalKit AdVQA task exists to follow); test-dev (36,807) is scored on EvalAI and
    not offered here.
    """

    name = "advqa_val"
    description = "AdVQA val: VQA accuracy (HuggingFaceM4/AdVQA, split val)"
    hub = {"repo": "HuggingFaceM4/AdVQA", "config": None, "split": "val", "revision": None,
           "unpinned": "a loading-script dataset current `datasets` cannot run; give the official files with --data"}
    world = "advqa"
