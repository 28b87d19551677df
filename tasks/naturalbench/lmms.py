"""NaturalBench in lmms-eval: naturalbench."""
from harness.integrations.equivalence import LmmsEquivalent


def notes(task: str, version) -> list[str]:
    return ["NaturalBench: lmms-eval declares naturalbench_ACC but emits naturalbench_Acc, so plain Acc is not "
            "reported (G/Q/I-Acc are); the prompt joins question and suffix with a space (official: none); "
            "the task needs all 7,600 rows (--limit runs crash)"]


EQUIVALENT = LmmsEquivalent(prefix="naturalbench", tasks={"naturalbench": "naturalbench"},
                            same_metric={"naturalbench": {"g_acc": ("naturalbench_G_ACC", 1.0),
                                                          "q_acc": ("naturalbench_Q_ACC", 1.0),
                                                          "i_acc": ("naturalbench_I_ACC", 1.0)}}, notes=notes)
