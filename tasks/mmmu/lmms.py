"""MMMU in lmms-eval: mmmu_val, mmmu_test, ..."""
from harness.integrations.equivalence import LmmsEquivalent

FIXED_IN = (0, 7, 3)   # first release checked to carry lmms-eval PR #1471 (issue #1436)


def notes(task: str, version) -> list[str]:
    out = ["MMMU: lmms-eval's multiple-choice parser matches '<letter> ' without a leading space ('DNA ' "
           "picks A), its random fallback is unseeded and not counted, and options are shown as 'A.' "
           "(official '(A)')"]
    if version is None:
        out.append("MMMU: lmms-eval version not recorded (pass --lmms-version): releases between PR #724 "
                   "and PR #1471 score every open question 0 (issue #1436); 0.7.3 has the fix")
    elif version < FIXED_IN:
        out.append(f"MMMU: lmms-eval {'.'.join(map(str, version))} may score every open question 0 (issue #1436, "
                   "fixed by PR #1471, present in 0.7.3)")
    return out


EQUIVALENT = LmmsEquivalent(prefix="mmmu", tasks={"mmmu_val": "mmmu_val"},
                            same_metric={"mmmu_val": {"accuracy": ("mmmu_acc", 1.0)}}, notes=notes)
