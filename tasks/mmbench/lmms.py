"""MMBench in lmms-eval: mmbench_en_dev, mmbench_en_test, ..."""
from harness.integrations.equivalence import LmmsEquivalent


def notes(task: str, version) -> list[str]:
    return ["MMBench: gpt_eval_score is CircularEval accuracy x100; answers the rules cannot parse go to an "
            "OpenAI judge (env MODEL_VERSION, default gpt-4o-2024-11-20, not recorded in the results file) "
            "and then to a seeded random letter among the options plus 'E'; VLMEvalKit uses 'Z'"]


EQUIVALENT = LmmsEquivalent(prefix="mmbench", tasks={"mmbench_en_dev": "mmbench_en_dev"},
                            same_metric={"mmbench_en_dev": {"circular_accuracy": ("gpt_eval_score", 0.01)}},
                            percent_metrics=frozenset({"gpt_eval_score"}), notes=notes)
