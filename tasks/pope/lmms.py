"""POPE in lmms-eval: the tasks pope, pope_adv, pope_pop, pope_random, pope_full."""
from harness.integrations.equivalence import LmmsEquivalent


def notes(task: str, version) -> list[str]:
    out = ["POPE: exact match on the lower-cased, stripped answer ('Yes.' scores 0; the official evaluate.py "
           "heuristic reads it as yes); yes_ratio is the ground-truth ratio, not the predicted one; answers "
           "other than yes/no drop out of precision and recall"]
    if task in ("pope", "pope_full"):
        out.append("POPE: pope pools adversarial, popular and random into one set; our headline f1 is the "
                   "mean of the per-split F1s, so pope_f1_score is not comparable with it")
    return out


# no same_metric on purpose: lmms-eval's pope pools the three splits into one F1, our headline f1 is the mean of
# the per-split F1s, so no column may take one for the other
EQUIVALENT = LmmsEquivalent(prefix="pope", tasks={"pope": "pope"}, notes=notes)
