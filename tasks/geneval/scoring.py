"""GenEval verdicts and summary, following djghosh13/geneval@af4902f `evaluation/evaluate_images.py` (defaults)
and `evaluation/summary_scores.py`.

Detector and colour classifier are separate scorers; this module only turns their outputs into verdicts.
mmdetection returns float32 arrays, so thresholds and geometry are computed in float32 here as well.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
# Zero-shot colour prompts (clip_benchmark zero_shot_classifier averages the normalised text embeddings).
COLOR_TEMPLATES = (
    "a photo of a {c} {classname}",
    "a photo of a {c}-colored {classname}",
    "a photo of a {c} object",
)
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS = ("left of", "right of", "above", "below")
THRESHOLD = 0.3
COUNTING_THRESHOLD = 0.9
MAX_OBJECTS = 16
MAX_OVERLAP = 1.0  # 1.0 disables NMS
POSITION_THRESHOLD = 0.1
BACKGROUND = "#999"  # i.e. #999999

ColourOf = Union[Callable[[str, Mapping[str, Any]], str], Mapping[str, Sequence[str]]]


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # float32 [x1, y1, x2, y2]
    score: np.float32
    index: int  # position in the caller's per-class list, used for precomputed colour lookups
    source: Mapping[str, Any]  # the caller's detection dict, handed to colour callables unchanged


def colour_prompts(classname: str) -> dict[str, list[str]]:
    """The three zero-shot prompts for each colour, for one object class."""
    return {c: [t.format(c=c, classname=classname) for t in COLOR_TEMPLATES] for c in COLORS}


def compute_iou(box_a, box_b) -> np.float32:
    """IoU with the official inclusive-pixel (+1) convention, in float32."""
    a = np.asarray(box_a, dtype=np.float32)[:4]
    b = np.asarray(box_b, dtype=np.float32)[:4]

    def area(x1, y1, x2, y2):
        return max(x2 - x1 + 1, np.float32(0)) * max(y2 - y1 + 1, np.float32(0))

    inter = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    union = area(*a) + area(*b) - inter
    return inter / union if union else np.float32(0)


def relative_position(box_a, box_b, threshold: float = POSITION_THRESHOLD) -> set[str]:
    """Relations of A relative to B ("left of", "right of", "above", "below"); image y points down."""
    boxes = np.array([np.asarray(box_a)[:4], np.asarray(box_b)[:4]], dtype=np.float32).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - np.float32(threshold) * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def filter_detections(detected: Mapping[str, Sequence[Mapping[str, Any]]], tag: str, *,
                      threshold: float = THRESHOLD, counting_threshold: float = COUNTING_THRESHOLD,
                      max_objects: int = MAX_OBJECTS, max_overlap: float = MAX_OVERLAP,
                      ties: str = "input") -> dict[str, list[Detection]]:
    """Per class: keep score > threshold (> counting_threshold for every class on counting prompts), most
    confident first, at most `max_objects`, then optional greedy NMS. Classes left empty are dropped.

    ties="input" keeps equal scores in the caller's order (a stable descending sort). The official
    `argsort()[::-1]` reverses equal scores where numpy's sort happens to be stable and is arbitrary elsewhere;
    ties="reversed" reproduces the stable-sort case.
    """
    if ties not in ("input", "reversed"):
        raise ValueError(f"ties must be 'input' or 'reversed', got {ties!r}")
    limit = np.float32(counting_threshold if tag == "counting" else threshold)
    out: dict[str, list[Detection]] = {}
    for classname, dets in detected.items():
        dets = list(dets)
        if not dets:
            continue
        boxes = np.array([np.asarray(d["box"], dtype=np.float32)[:4] for d in dets], dtype=np.float32)
        scores = np.array([d["score"] for d in dets], dtype=np.float32)
        if boxes.shape != (len(dets), 4) or np.isnan(scores).any():
            raise ValueError(f"class {classname!r}: every detection needs a 4-number box and a non-NaN score")
        if ties == "input":
            order = np.argsort(-scores, kind="stable")
        else:
            order = np.argsort(scores, kind="stable")[::-1]
        order = order[scores[order] > limit][:max_objects].tolist()
        kept = []
        while order:
            best = order.pop(0)
            kept.append(Detection(boxes[best], scores[best], best, dets[best]))
            if max_overlap != 1:
                order = [i for i in order if compute_iou(boxes[best], boxes[i]) < np.float32(max_overlap)]
        if kept:
            out[classname] = kept
    return out


def validate_metadata(entry: Any, where: str = "metadata") -> dict:
    """Check one evaluation_metadata.jsonl object; raises ValueError naming `where` on the first problem."""
    def fail(msg):
        raise ValueError(f"{where}: {msg}")

    if not isinstance(entry, dict):
        fail("expected a JSON object")
    for key, kind in (("tag", str), ("prompt", str), ("include", list)):
        if not isinstance(entry.get(key), kind):
            fail(f"field {key!r} missing or not a {kind.__name__}")
    if not isinstance(entry.get("exclude", []), list):
        fail("field 'exclude' is not a list")
    for part in ("include", "exclude"):
        for i, clause in enumerate(entry.get(part, [])):
            label = f"{part}[{i}]"
            if not isinstance(clause, dict) or not isinstance(clause.get("class"), str):
                fail(f"{label} needs a string 'class'")
            count = clause.get("count")
            if isinstance(count, bool) or not isinstance(count, int):
                fail(f"{label} needs an integer 'count'")
            if count <= 0:
                fail(f"{label} has count {count}; counts must be >= 1")
            if part == "exclude":
                continue
            if "color" in clause and clause["color"] not in COLORS:
                fail(f"{label} colour {clause['color']!r} is not one of {', '.join(COLORS)}")
            if "position" in clause:
                pos = clause["position"]
                if (not isinstance(pos, list) or len(pos) != 2 or pos[0] not in RELATIONS
                        or isinstance(pos[1], bool) or not isinstance(pos[1], int) or not 0 <= pos[1] < i):
                    fail(f"{label} position must be [relation, index of an earlier include clause], got {pos!r}")
    return entry


def load_metadata(path: Union[str, Path]) -> list[dict]:
    """Read evaluation_metadata.jsonl (one prompt per line; line i is image folder i)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries = []
    for lineno, line in enumerate(lines, 1):
        where = f"{path}:{lineno}"
        if not line.strip():
            raise ValueError(f"{where}: blank line (it would shift every later prompt's folder index)")
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: invalid JSON ({exc.msg})") from None
        entries.append(validate_metadata(entry, where))
    if not entries:
        raise ValueError(f"{path}: no prompts")
    return entries


def _colours(colour_of: ColourOf | None, classname: str, found: list[Detection]) -> list[str]:
    if colour_of is None:
        raise ValueError(f"a colour clause for {classname!r} needs colour_of (callable or mapping)")
    if callable(colour_of):
        colours = [colour_of(classname, d.source) for d in found]
    else:
        per_class = colour_of.get(classname)
        if per_class is None or any(d.index >= len(per_class) for d in found):
            raise ValueError(f"colour mapping has no entry for every kept {classname!r} detection")
        colours = [per_class[d.index] for d in found]
    bad = [c for c in colours if c not in COLORS]
    if bad:
        raise ValueError(f"colour classifier returned {bad[0]!r}, not one of {', '.join(COLORS)}")
    return colours


def evaluate(detected: Mapping[str, Sequence[Any]], metadata: Mapping[str, Any],
             colour_of: ColourOf | None = None, *, prefiltered: bool = False,
             position_threshold: float = POSITION_THRESHOLD, **filter_options) -> tuple[bool, str]:
    """Verdict for one image: (correct, reason), reasons worded as in the official script.

    `position_threshold` is the official `--options position_threshold` (the margin of relative_position);
    `filter_options` go to filter_detections (threshold, counting_threshold, max_objects, max_overlap, ties).

    `detected` holds raw detector output ({class: [{"box", "score", "mask"?}, ...]}) unless `prefiltered`,
    in which case it is the output of `filter_detections`. `colour_of(class, detection_dict)` names a colour;
    a mapping {class: [colour per input detection, in the caller's order]} is accepted instead.
    """
    validate_metadata(dict(metadata), "metadata")
    objects = detected if prefiltered else filter_detections(detected, metadata["tag"], **filter_options)
    correct = True
    reason: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata["include"]:
        classname, count = req["class"], req["count"]
        matched = True
        found = list(objects.get(classname, []))[:count]
        if len(found) < count:
            correct = matched = False
            reason.append(f"expected {classname}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colours = _colours(colour_of, classname, found)
                if colours.count(req["color"]) < count:
                    correct = matched = False
                    reason.append(
                        f"expected {req['color']} {classname}>={count}, found "
                        f"{colours.count(req['color'])} {req['color']}; and "
                        + ", ".join(f"{colours.count(c)} {c}" for c in COLORS if c in colours))
            if "position" in req and matched:
                expected_rel, target_group = req["position"]
                targets = matched_groups[target_group]
                if targets is None:
                    correct = matched = False
                    reason.append(f"no target for {classname} to be {expected_rel}")
                else:
                    for obj in found:
                        for target in targets:
                            true_rels = relative_position(obj.box, target.box, position_threshold)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                reason.append(f"expected {classname} {expected_rel} target, found "
                                              f"{' and '.join(true_rels)} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        n = len(objects.get(req["class"], []))
        if n >= req["count"]:
            correct = False
            reason.append(f"expected {req['class']}<{req['count']}, found {n}")
    return correct, "\n".join(reason)


def _prompt_key(record: Mapping[str, Any]) -> str:
    for key in ("prompt_id", "metadata", "prompt"):
        if key in record:
            value = record[key]
            return f"{key}:{value if isinstance(value, (str, int)) else json.dumps(value, sort_keys=True)}"
    raise ValueError("each record needs 'prompt_id', 'metadata' or 'prompt' to group images by prompt")


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-tag accuracy over images; Overall = unweighted mean of the tags present (summary_scores.py).

    "% correct images/prompts" are informational only; a prompt counts as correct when any of its images is.
    """
    per_tag: dict[str, list[int]] = {}  # insertion order = first appearance, like groupby(sort=False)
    prompts: dict[str, bool] = {}
    n_images = n_correct = 0
    for i, rec in enumerate(records):
        ok = rec.get("correct")
        if not isinstance(ok, (bool, np.bool_)):
            raise ValueError(f"record {i}: 'correct' must be a bool, got {ok!r}")
        tag = rec.get("tag")
        if not isinstance(tag, str):
            raise ValueError(f"record {i}: missing 'tag'")
        counts = per_tag.setdefault(tag, [0, 0])
        counts[0] += bool(ok)
        counts[1] += 1
        key = _prompt_key(rec)
        prompts[key] = prompts.get(key, False) or bool(ok)
        n_images += 1
        n_correct += bool(ok)
    if not n_images:
        raise ValueError("no records to summarise")
    accuracies = {tag: c / n for tag, (c, n) in per_tag.items()}
    return {
        "overall": float(np.mean(list(accuracies.values()))),
        "per_tag": accuracies,
        "per_tag_counts": {tag: {"correct": c, "total": n} for tag, (c, n) in per_tag.items()},
        "tags_missing": [t for t in TAGS if t not in per_tag],
        "n_images": n_images,
        "n_prompts": len(prompts),
        "correct_images": n_correct / n_images,
        "correct_prompts": sum(prompts.values()) / len(prompts),
    }


def colour_crop(image, box, mask=None, background: str = BACKGROUND, crop: bool = True):
    """The colour classifier's input: `image` over a flat background through the instance mask, cut to `box`.

    Read images with ImageOps.exif_transpose first, as the official script does, so boxes line up.
    background="original" keeps the unmasked pixels (the script's bgcolor option).
    """
    from PIL import Image

    rgb = image.convert("RGB")
    if mask is not None:
        blank = rgb.copy() if background == "original" else Image.new("RGB", rgb.size, color=background)
        if not isinstance(mask, Image.Image):
            mask = np.asarray(mask)
            if mask.shape != (rgb.size[1], rgb.size[0]):
                raise ValueError(f"mask shape {mask.shape} does not match image (H, W) {rgb.size[::-1]}")
            mask = Image.fromarray(mask != 0)  # binary, like mmdet's boolean instance masks
        elif mask.size != rgb.size:
            raise ValueError(f"mask size {mask.size} does not match image size {rgb.size}")
        rgb = Image.composite(rgb, blank, mask)
    if crop:
        # PIL rounds float box coordinates itself, which is what the official crop relies on.
        rgb = rgb.crop(tuple(float(v) for v in np.asarray(box, dtype=np.float32)[:4]))
    return rgb
