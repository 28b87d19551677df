"""WISE in the world (Yuwei-Niu/WISE schema): knowledge prompts in WISE's six categories and shares. Category strings are the
ones WISE's data files use ("Cultural knowledge", "time", "Space", "Biology", "Physical Knowledge", "Chemistry")
and prompt ids start at each category's first id in WISE (1, 401, 568, 701, 801, 901), so id-range based
category grouping works unchanged. The Explanation ends with "Expected: ... ." for the rule judge.
"""
from __future__ import annotations

import numpy as np

from harness.world.grammar import parse_requirement
from harness.world.knowledge import CATEGORIES, category_counts, make_item, requirement_scene
from harness.world.scene import Scene, rng_for

WISE_COLUMNS = ("Prompt", "Explanation", "Category", "Subcategory", "prompt_id", "Hint")


def build_wise(n: int = 50, seed: int = 0) -> list[dict]:
    """``n`` prompts split over the six categories in WISE's proportions (distinct prompts per category when
    possible)."""
    rows: list[dict] = []
    for key, k in category_counts(n).items():
        name, first_id, _ = CATEGORIES[key]
        seen: set[str] = set()
        j = 0
        for attempt in range(k * 50):
            if j >= k:
                break
            item = make_item(rng_for("eval", "wise", seed, key, attempt), key)
            if item["prompt"] in seen and attempt < k * 25:
                continue
            seen.add(item["prompt"])
            rows.append({"Prompt": item["prompt"], "Explanation": item["explanation"], "Category": name,
                         "Subcategory": item["subcategory"], "prompt_id": first_id + j, "Hint": item["hint"]})
            j += 1
    return rows


def reference_scene(row: dict, rng: np.random.Generator) -> Scene:
    """A scene that satisfies a WISE world row's requirement."""
    req = parse_requirement(row["Explanation"])
    if req is None:
        raise ValueError("row has no 'Expected:' requirement")
    return requirement_scene(req, rng)
