"""VQAv2 in lmms-eval: vqav2_val, vqav2_test."""
from harness.integrations.equivalence import LmmsEquivalent


def notes(task: str, version) -> list[str]:
    return ["VQAv2: lmms-eval always normalises answers (punctuation, number words, articles), also when all "
            "ten ground-truth answers agree, where the official vqaEval.py does not ('Yes' against 10x'yes' "
            "scores 1.0 here, 0.0 officially); exact_match holds VQA accuracy"]


EQUIVALENT = LmmsEquivalent(prefix="vqav2", tasks={"vqav2_val": "vqav2_val"},
                            same_metric={"vqav2_val": {"accuracy": ("exact_match", 1.0)}}, notes=notes)
