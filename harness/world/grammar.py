"""Object-list phrases shared by captions, GenEval prompts, WISE requirements and caption options.

A group is ``{"count", "shape", "color"?, "size"?}``; a phrase lists groups ("a red circle and two blue squares").
A requirement is a phrase, optionally with one relation between two single-object groups
("one blue circle above one green square"), written as the sentence "Expected: <phrase>." at the end of a WISE
Explanation so that the rule judge can read it back with ``parse_requirement``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .scene import COLOR_NAMES, PLURALS, RELATIONS, SIZE_NAMES, Scene, relation

NUM_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
             "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
SINGULAR = {v: k for k, v in PLURALS.items()}


def number_word(n: int) -> str:
    return NUM_WORDS[n] if 0 <= n < len(NUM_WORDS) else str(n)


def group_phrase(g: dict, one: str = "a") -> str:
    """{"count": 2, "color": "red", "shape": "circle"} -> "two red circles" (``one`` is the word for 1)."""
    n = g.get("count", 1)
    words = [one if n == 1 else number_word(n)]
    words += [g[k] for k in ("size", "color") if g.get(k)]
    words.append(g["shape"] if n == 1 else PLURALS[g["shape"]])
    return " ".join(words)


def list_phrase(groups: list[dict], one: str = "a") -> str:
    parts = [group_phrase(g, one) for g in groups]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_GROUP_RX = re.compile(
    r"(?P<n>a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+) "
    rf"(?:(?P<size>{'|'.join(SIZE_NAMES)}) )?(?:(?P<color>{'|'.join(COLOR_NAMES)}) )?"
    r"(?P<shape>circles?|squares?|triangles?)")


def parse_group(text: str) -> dict | None:
    m = _GROUP_RX.fullmatch(text.strip().lower())
    if not m:
        return None
    n = m["n"]
    count = 1 if n in ("a", "an") else (int(n) if n.isdigit() else NUM_WORDS.index(n))
    shape = SINGULAR.get(m["shape"], m["shape"])
    g = {"count": count, "shape": shape}
    if m["color"]:
        g["color"] = m["color"]
    if m["size"]:
        g["size"] = m["size"]
    return g


def parse_list(text: str) -> list[dict] | None:
    """Inverse of ``list_phrase``; None when any part is not a group."""
    parts = [p for p in re.split(r",\s*|\s+and\s+", text.strip().lower()) if p]
    groups = [parse_group(p) for p in parts]
    return None if not groups or any(g is None for g in groups) else groups


def scene_groups(scene: Scene, sizes: bool = False) -> list[dict]:
    """Objects grouped by (size?, color, shape), groups in left-to-right order of their first member."""
    out: list[dict] = []
    for o in sorted(scene.objects, key=lambda o: (o.x, o.y)):
        key = {"shape": o.shape, "color": o.color, **({"size": o.size} if sizes else {})}
        for g in out:
            if all(g.get(k) == v for k, v in key.items()) and len(g) == len(key) + 1:
                g["count"] += 1
                break
        else:
            out.append({"count": 1, **key})
    return out


def count_matching(scene: Scene, g: dict) -> int:
    return sum(all(getattr(o, k) == g[k] for k in ("shape", "color", "size") if g.get(k)) for o in scene.objects)


def describes_exactly(scene: Scene, groups: list[dict]) -> bool:
    """True when the scene holds exactly these groups and nothing else."""
    return (sum(g["count"] for g in groups) == len(scene.objects)
            and all(count_matching(scene, g) == g["count"] for g in groups))


@dataclass(frozen=True)
class Requirement:
    groups: tuple[dict, ...]
    relation: str | None = None  # groups[0] <relation> groups[1], both single objects
    extra: dict = field(default_factory=dict, compare=False)

    def text(self) -> str:
        if self.relation:
            a, b = self.groups
            return f"{group_phrase(a, 'one')} {self.relation} {group_phrase(b, 'one')}"
        return list_phrase(list(self.groups), "one")

    def sentence(self) -> str:
        return f"Expected: {self.text()}."

    def satisfied_by(self, scene: Scene) -> bool:
        if not describes_exactly(scene, list(self.groups)):
            return False
        if self.relation is None:
            return True
        a_objs = [o for o in scene.objects if count_matching(Scene((o,)), self.groups[0])]
        b_objs = [o for o in scene.objects if count_matching(Scene((o,)), self.groups[1])]
        return all(relation(a, b) == self.relation for a in a_objs for b in b_objs if a is not b)


_REQ_RX = re.compile(r"expected:\s*(?P<body>[^.]*)\.?\s*$", re.IGNORECASE)


def parse_requirement(explanation: str) -> Requirement | None:
    """Read the final "Expected: ... ." sentence of a WISE Explanation written by this world."""
    idx = explanation.lower().rfind("expected:")
    if idx < 0:
        return None
    m = _REQ_RX.match(explanation[idx:].strip())
    if not m:
        return None
    body = m["body"].strip().lower()
    for rel in RELATIONS:
        left, sep, right = body.partition(f" {rel} ")
        if sep:
            a, b = parse_group(left), parse_group(right)
            if a is None or b is None or a["count"] != 1 or b["count"] != 1:
                return None
            return Requirement((a, b), rel)
    groups = parse_list(body)
    return None if groups is None else Requirement(tuple(groups))

