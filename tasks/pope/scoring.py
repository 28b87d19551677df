"""POPE scoring: the official ``evaluate.py`` (AoiDragon/POPE) and the lmms-eval variant.

Profiles
--------
``"official"`` (the same as LLaVA / InternVL / BAGEL ``eval_pope.py``):

* Extraction keeps the text before the first ``.``, removes every ``,`` and splits on
  a single space.  If a token is exactly ``"No"``, ``"not"`` or ``"no"``, the answer
  is no; otherwise it is yes.  The test is case-sensitive: "NO", "Not sure" and
  "Nope." are yes, and unparseable answers count as yes.
* Label ``"no"`` is 0 and any other label is 1; positive = yes.
* Accuracy, precision, recall, F1 and the PREDICTED yes-ratio, per split.  The
  LLaVA-1.5 headline is the mean F1 over the three splits (``mean_f1``).

``"lmms"`` (lmms-eval ``pope`` utils):

* A prediction is ``output.lower().strip()`` and must equal the label exactly, so
  "yes." is wrong.
* Precision counts only ``pred == "yes"`` (TP: gt yes, FP: gt no).  Recall counts
  ``pred == "yes"`` as TP and ``pred == "no"`` as FN, both with gt yes.  Any other
  string drops out of precision and recall.  An undefined precision, recall or F1
  is 0, as in lmms-eval.
* lmms-eval's ``pope_yes_ratio`` is the fraction of GROUND-TRUTH yes (always 0.5 on
  balanced data), which is a bug.  ``yes_ratio`` here is the predicted ratio under
  lmms's exact match (``pred == "yes"``).  The number lmms-eval prints is
  ``lmms_reported_yes_ratio``.
* The lmms ``pope`` task pools the three splits (9,000 samples).  ``pope_split_metrics``
  returns that pooled row under ``"all"`` for both profiles.

Deliberate difference from the official script: it raises ZeroDivisionError when a
split has no yes prediction (precision, which it computes before accuracy) or when
P + R = 0.  Here an undefined metric is None and the other metrics are still
reported.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

PROFILES = ("official", "lmms")


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")


def _div(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def extract_yes_no(text: str) -> str:
    """Official yes/no extraction; returns ``"yes"`` or ``"no"``."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    if "No" in words or "not" in words or "no" in words:
        return "no"
    return "yes"


def label_to_int(label: str) -> int:
    """Official label encoding: exactly ``"no"`` is 0, anything else is 1."""
    return 0 if label == "no" else 1


def metrics_from_counts(tp: int, fp: int, tn: int, fn: int) -> dict:
    """Official formulas from a confusion matrix; undefined values are None."""
    n = tp + fp + tn + fn
    precision = _div(tp, tp + fp)
    recall = _div(tp, tp + fn)
    f1 = None
    if precision is not None and recall is not None:
        f1 = _div(2 * precision * recall, precision + recall)
    return {
        "n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "accuracy": _div(tp + tn, n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": _div(tp + fp, n),
    }


def _official_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    preds = [0 if extract_yes_no(p) == "no" else 1 for p in predictions]
    gts = [label_to_int(g) for g in labels]
    tp = sum(1 for p, g in zip(preds, gts) if p == 1 and g == 1)
    fp = sum(1 for p, g in zip(preds, gts) if p == 1 and g == 0)
    tn = sum(1 for p, g in zip(preds, gts) if p == 0 and g == 0)
    fn = sum(1 for p, g in zip(preds, gts) if p == 0 and g == 1)
    return metrics_from_counts(tp, fp, tn, fn)


def _lmms_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    preds = [p.lower().strip() for p in predictions]
    gts = [g.lower().strip() for g in labels]
    n = len(preds)
    tp = sum(1 for p, g in zip(preds, gts) if g == "yes" and p == "yes")
    fp = sum(1 for p, g in zip(preds, gts) if g == "no" and p == "yes")
    tn = sum(1 for p, g in zip(preds, gts) if g == "no" and p == "no")
    fn = sum(1 for p, g in zip(preds, gts) if g == "yes" and p == "no")
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    f1 = 2 * (precision * recall) / (precision + recall) if precision + recall > 0 else 0
    gt_yes = sum(1 for g in gts if g == "yes")
    gt_no = sum(1 for g in gts if g == "no")
    return {
        "n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "accuracy": _div(sum(1 for p, g in zip(preds, gts) if p == g), n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": _div(sum(1 for p in preds if p == "yes"), n),
        "lmms_reported_yes_ratio": gt_yes / (gt_yes + gt_no) if gt_yes + gt_no > 0 else 0,
        "n_not_yes_no": sum(1 for p in preds if p not in ("yes", "no")),
    }


def pope_metrics(predictions: Sequence[str], labels: Sequence[str], profile: str = "official") -> dict:
    """Metrics for one split: counts, accuracy, precision, recall, f1, yes_ratio."""
    _check_profile(profile)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if profile == "official":
        return _official_metrics(predictions, labels)
    return _lmms_metrics(predictions, labels)


def mean_f1(f1_scores: Iterable[float | None]) -> float | None:
    """LLaVA-1.5 headline: the mean F1 over splits; None if any split's F1 is undefined."""
    values = list(f1_scores)
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def pope_split_metrics(records: Iterable[tuple[str, str, str]], profile: str = "official") -> dict:
    """Metrics per split from ``(split, prediction, label)`` triples.

    Returns ``{"splits": {split: metrics}, "all": pooled metrics, "mean_f1": ...}``.
    """
    by_split: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    all_preds: list[str] = []
    all_labels: list[str] = []
    for split, prediction, label in records:
        by_split[split][0].append(prediction)
        by_split[split][1].append(label)
        all_preds.append(prediction)
        all_labels.append(label)
    splits = {s: pope_metrics(p, g, profile) for s, (p, g) in by_split.items()}
    return {
        "splits": splits,
        "all": pope_metrics(all_preds, all_labels, profile),
        "mean_f1": mean_f1(m["f1"] for m in splits.values()),
    }
