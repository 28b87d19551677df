"""Rule scorers of the world (pure logic, no engine dependency).

* ``wise_judge(image, row)``: WISE's three 0-2 scores from the parsed image and the row's "Expected:" requirement.
  consistency: 2 = exactly the required objects (and relation), 1 = at least half of the required attributes
  (shape, colour, size of each required object) can be matched or everything is right but the relation / extras,
  0 = otherwise. realism: 2 = every blob recognised with score >= 0.9, 1 = some doubt, 0 = nothing recognisable
  or mostly unrecognised blobs. aesthetic_quality: 2 = objects inside the frame and apart, 1 = one flaw, 0 = none
  visible or several flaws.
* ``scene_similarity(a, b)``: F1 of the two object sets over (shape, colour, 3x3 cell of the centre), in [0, 1];
  a centre within 0.03 of a cell border counts in both cells, so tiny shifts do not flip the cell.
* ``matches_scene`` / ``scene_diff``: does an image parse to the same scene as a reference (for trainers).
"""
from __future__ import annotations

from itertools import permutations

from PIL import Image

from .grammar import Requirement, parse_requirement
from .parse import ParseResult, parse
from .scene import BORDER, GAP, Obj, Scene

DETECT_THRESHOLD = 0.3
CELL_TOL = 0.03


def _scene_of(x, threshold: float = DETECT_THRESHOLD) -> Scene:
    if isinstance(x, Scene):
        return x
    if isinstance(x, ParseResult):
        return x.to_scene(threshold)
    return parse(x).to_scene(threshold)


def _instances(req: Requirement) -> list[dict]:
    return [{k: g[k] for k in ("shape", "color", "size") if g.get(k)} for g in req.groups for _ in range(g["count"])]


def consistency(scene: Scene, req: Requirement) -> int:
    if req.satisfied_by(scene):
        return 2
    wanted = _instances(req)
    possible = sum(len(w) for w in wanted)
    objs = list(scene.objects)[:12]
    best = 0
    if objs:
        k = min(len(wanted), len(objs))
        for chosen in permutations(range(len(objs)), k):
            for wsel in permutations(range(len(wanted)), k) if len(wanted) > k else [tuple(range(k))]:
                score = sum(sum(getattr(objs[o], a) == v for a, v in wanted[w].items()) for o, w in zip(chosen, wsel))
                best = max(best, score)
    return 1 if possible and best / possible >= 0.5 else 0


def realism(result: ParseResult) -> int:
    dets = result.objects()
    unrec = len(result.unrecognised)
    if not dets or unrec >= max(2, len(dets)):
        return 0
    if unrec == 0 and all(d["score"] >= 0.9 for d in dets):
        return 2
    return 1


def aesthetic(result: ParseResult) -> int:
    w, h = result.size
    boxes = [d["box"] for d in result.objects(DETECT_THRESHOLD)] + [u["box"] for u in result.unrecognised]
    if not boxes:
        return 0
    m = BORDER / 2
    flaws = sum(b[0] < m * w or b[1] < m * h or b[2] > (1 - m) * w or b[3] > (1 - m) * h for b in boxes)
    g = GAP / 2
    for i, a in enumerate(boxes):
        for b in boxes[:i]:
            if (a[0] < b[2] + g * w and b[0] < a[2] + g * w) and (a[1] < b[3] + g * h and b[1] < a[3] + g * h):
                flaws += 1
    return 2 if flaws == 0 else 1 if flaws == 1 else 0


def wise_judge(image: Image.Image, row) -> dict:
    """{"consistency", "realism", "aesthetic_quality"} (ints 0-2) for a WISE world row (or its Explanation)."""
    explanation = row if isinstance(row, str) else row["Explanation"]
    req = parse_requirement(explanation)
    if req is None:
        raise ValueError("the Explanation has no world 'Expected:' requirement")
    result = parse(image)
    return {"consistency": consistency(result.to_scene(DETECT_THRESHOLD), req), "realism": realism(result),
            "aesthetic_quality": aesthetic(result)}


def judge_text(scores: dict) -> str:
    """The scores written the way WISE's legacy judge answers (parsed by its regex)."""
    return (f"Consistency: {scores['consistency']}\nRealism: {scores['realism']}\n"
            f"Aesthetic Quality: {scores['aesthetic_quality']}")


def _cells(v: float) -> set[int]:
    out = {min(2, int(v * 3))}
    for i, t in enumerate((1 / 3, 2 / 3)):
        if abs(v - t) < CELL_TOL:
            out |= {i, i + 1}
    return out


def _max_matching(a: list[Obj], b: list[Obj], ok) -> int:
    """Size of a maximum bipartite matching between a and b under the compatibility ``ok``."""
    match: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(len(b)):
            if j not in seen and ok(a[i], b[j]):
                seen.add(j)
                if j not in match or augment(match[j], seen):
                    match[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(a)))


def _same_cell(p: Obj, q: Obj) -> bool:
    return (p.shape == q.shape and p.color == q.color
            and bool(_cells(p.x) & _cells(q.x)) and bool(_cells(p.y) & _cells(q.y)))


def scene_similarity(a, b) -> float:
    """Object-set F1 in [0, 1] between two images (or Scenes / ParseResults); callers scale to 0-100."""
    sa, sb = _scene_of(a), _scene_of(b)
    na, nb = len(sa.objects), len(sb.objects)
    if na == 0 and nb == 0:
        return 1.0
    return 2.0 * _max_matching(list(sa.objects), list(sb.objects), _same_cell) / (na + nb)


def scene_diff(image, reference: Scene, tol: float = 0.06, sizes: bool = True) -> dict:
    """How a parsed image differs from ``reference``: matched / missing / extra object counts, unrecognised blobs.
    Objects match when shape, colour (and size) agree and centres are within ``tol`` of the side."""
    result = image if isinstance(image, ParseResult) else parse(image)
    got = list(result.to_scene(DETECT_THRESHOLD).objects)
    ref = list(reference.objects)

    def ok(p: Obj, q: Obj) -> bool:
        return (p.shape == q.shape and p.color == q.color and (not sizes or p.size == q.size)
                and abs(p.x - q.x) <= tol and abs(p.y - q.y) <= tol)

    m = _max_matching(ref, got, ok)
    return {"matched": m, "missing": len(ref) - m, "extra": len(got) - m, "unrecognised": len(result.unrecognised)}


def matches_scene(image, reference: Scene, tol: float = 0.06, sizes: bool = True) -> bool:
    """True when ``image`` parses to exactly the reference scene (every object matched, nothing else)."""
    d = scene_diff(image, reference, tol, sizes)
    return d["missing"] == 0 and d["extra"] == 0 and d["unrecognised"] == 0
