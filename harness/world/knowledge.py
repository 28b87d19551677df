"""World knowledge for WISE-style prompts: everyday facts that decide a colour, shape, count, relation or size.

A prompt names one attribute only through a fact ("a circle in the color of a ripe banana"); the Explanation
states the fact and ends with the machine-readable requirement ("Expected: one yellow circle."). The same facts
feed the training stream (train seeds) and the WISE dataset (eval seeds): the benchmark checks whether a model
recalls them while drawing, as WISE does for real-world knowledge.
"""
from __future__ import annotations

import numpy as np

from .grammar import Requirement, group_phrase, number_word
from .qgen import pick
from .questions import stable_relation
from .scene import COLOR_NAMES, PLURALS, SHAPES, Scene, sample_until

# category key -> (WISE's Category string, first prompt_id of the category in WISE, share of WISE's 1000 prompts)
CATEGORIES = {
    "CULTURE": ("Cultural knowledge", 1, 0.4), "TIME": ("time", 401, 0.167), "SPACE": ("Space", 568, 0.133),
    "BIOLOGY": ("Biology", 701, 0.1), "PHYSICS": ("Physical Knowledge", 801, 0.1),
    "CHEMISTRY": ("Chemistry", 901, 0.1),
}

# (category, subcategory, kind, phrase, value, reason)
FACTS: list[tuple[str, str, str, str, object, str]] = [
    ("CULTURE", "Plant", "color", "a ripe banana", "yellow", "A ripe banana is yellow."),
    ("CULTURE", "Plant", "color", "a ripe tomato", "red", "A ripe tomato is red."),
    ("CULTURE", "Plant", "color", "fresh grass", "green", "Fresh grass is green."),
    ("CULTURE", "Plant", "color", "lavender flowers", "purple", "Lavender flowers are purple."),
    ("CULTURE", "Plant", "color", "an eggplant", "purple", "An eggplant is purple."),
    ("CULTURE", "Animal", "color", "a canary", "yellow", "A canary is yellow."),
    ("CULTURE", "Animal", "color", "a crow", "black", "A crow is black."),
    ("CULTURE", "Animal", "color", "a tree frog", "green", "A tree frog is green."),
    ("CULTURE", "Animal", "count", "as a cat has legs", 4, "A cat has four legs."),
    ("CULTURE", "Animal", "count", "as a bird has legs", 2, "A bird has two legs."),
    ("CULTURE", "Life", "color", "a fire truck", "red", "A fire truck is red."),
    ("CULTURE", "Life", "color", "a school bus", "yellow", "A school bus is yellow."),
    ("CULTURE", "Life", "shape", "shape like a yield sign", "triangle", "A yield sign is a triangle."),
    ("CULTURE", "Life", "shape", "shape like a coin", "circle", "A coin is round, a circle."),
    ("CULTURE", "Life", "count", "as a tricycle has wheels", 3, "A tricycle has three wheels."),
    ("CULTURE", "Life", "count", "as a bicycle has wheels", 2, "A bicycle has two wheels."),
    ("CULTURE", "Life", "count", "as a car has wheels", 4, "A car has four wheels."),
    ("CULTURE", "Art", "color", "paint mixed from blue and yellow", "green", "Blue and yellow paint make green."),
    ("CULTURE", "Art", "color", "paint mixed from red and blue", "purple", "Red and blue paint make purple."),
    ("CULTURE", "Festival", "color", "a christmas tree", "green", "A christmas tree is green."),
    ("CULTURE", "Festival", "color", "chinese new year lanterns", "red", "Chinese new year lanterns are red."),
    ("CULTURE", "Sports", "color", "the eight ball in pool", "black", "The eight ball in pool is black."),
    ("CULTURE", "Sports", "shape", "shape like a boxing ring seen from above", "square",
     "A boxing ring seen from above is a square."),
    ("CULTURE", "Celebrity", "color", "shrek", "green", "Shrek is green."),
    ("CULTURE", "Celebrity", "color", "pikachu", "yellow", "Pikachu is yellow."),
    ("CULTURE", "Celebrity", "color", "the smurfs", "blue", "The smurfs are blue."),
    ("CULTURE", "Construction", "shape", "shape like a pyramid of egypt seen from the side", "triangle",
     "A pyramid of egypt seen from the side is a triangle."),
    ("TIME", "Longitudinal time", "color", "a banana two weeks before it ripens", "green",
     "A banana is green before it ripens."),
    ("TIME", "Longitudinal time", "color", "a maple leaf in midsummer", "green", "A maple leaf is green in summer."),
    ("TIME", "Longitudinal time", "color", "a tomato once it has fully ripened", "red", "A ripe tomato is red."),
    ("TIME", "Longitudinal time", "shape", "shape like the moon halfway through the lunar month", "circle",
     "Halfway through the lunar month the moon is full, a circle."),
    ("TIME", "Longitudinal time", "count", "as there are seasons in a year", 4, "A year has four seasons."),
    ("TIME", "Horizontal time", "color", "the sky at midnight", "black", "The sky at midnight is black."),
    ("TIME", "Horizontal time", "color", "a clear sky at noon", "blue", "A clear sky at noon is blue."),
    ("TIME", "Horizontal time", "count", "as there are days in a weekend", 2, "A weekend has two days."),
    ("SPACE", "geographical location", "relation", "to the north of", "above", "On a map north is up."),
    ("SPACE", "geographical location", "relation", "to the south of", "below", "On a map south is down."),
    ("SPACE", "geographical location", "relation", "to the west of", "left of", "On a map west is left."),
    ("SPACE", "geographical location", "relation", "to the east of", "right of", "On a map east is right."),
    ("SPACE", "perspective scaling", "size", "close to the camera", "large",
     "Objects close to the camera look large and objects far away look small."),
    ("SPACE", "different view", "shape", "cube seen straight from the front", "square",
     "A cube seen from the front is a square."),
    ("SPACE", "different view", "shape", "cone seen from the side", "triangle",
     "A cone seen from the side is a triangle."),
    ("SPACE", "different view", "shape", "ball seen from any side", "circle", "A ball seen from any side is a circle."),
    ("SPACE", "Attribute inference", "shape", "shape with one corner fewer than a square", "triangle",
     "A square has four corners, so a shape with three corners is a triangle."),
    ("SPACE", "Attribute inference", "shape", "shape with one corner more than a triangle", "square",
     "A triangle has three corners, so a shape with four corners is a square."),
    ("BIOLOGY", "State", "color", "leaves full of chlorophyll", "green", "Chlorophyll makes leaves green."),
    ("BIOLOGY", "State", "color", "oxygen rich blood", "red", "Oxygen rich blood is red."),
    ("BIOLOGY", "State", "color", "a ripe lemon", "yellow", "A ripe lemon is yellow."),
    ("BIOLOGY", "Behavior", "color", "a chameleon hiding on a leaf", "green",
     "A chameleon hiding on a leaf turns green."),
    ("BIOLOGY", "Behavior", "count", "as a horse has legs", 4, "A horse has four legs."),
    ("BIOLOGY", "Behavior", "count", "as a person has eyes", 2, "A person has two eyes."),
    ("PHYSICS", "Optics", "color", "visible light with the longest wavelength", "red",
     "Red light has the longest visible wavelength."),
    ("PHYSICS", "Optics", "color", "visible light with the shortest wavelength", "purple",
     "Violet light, a purple, has the shortest visible wavelength."),
    ("PHYSICS", "Optics", "color", "an object that absorbs all visible light", "black",
     "An object that absorbs all visible light is black."),
    ("PHYSICS", "Thermodynamics", "color", "the hottest part of a gas flame", "blue",
     "The hottest part of a gas flame is blue."),
    ("PHYSICS", "Thermodynamics", "color", "a glowing hot stove ring", "red", "A glowing hot stove ring is red."),
    ("PHYSICS", "Mechanics", "relation", "resting on top of", "above",
     "Something resting on top of an object is above it."),
    ("PHYSICS", "Mechanics", "relation", "hanging under", "below", "Something hanging under an object is below it."),
    ("PHYSICS", "Physical Properties", "shape", "shape that rolls like a wheel", "circle",
     "A shape that rolls like a wheel is a circle."),
    ("CHEMISTRY", "Solution Chemical Reaction", "color", "blue litmus paper dipped in acid", "red",
     "Acid turns blue litmus paper red."),
    ("CHEMISTRY", "Solution Chemical Reaction", "color", "red litmus paper dipped in a base", "blue",
     "A base turns red litmus paper blue."),
    ("CHEMISTRY", "Solution Chemical Reaction", "color", "copper sulfate solution", "blue",
     "Copper sulfate solution is blue."),
    ("CHEMISTRY", "Combustion", "color", "soot from a candle", "black", "Soot is black."),
    ("CHEMISTRY", "Combustion", "color", "a flame colored by sodium", "yellow", "Sodium colors a flame yellow."),
    ("CHEMISTRY", "Combustion", "color", "a flame colored by potassium", "purple", "Potassium colors a flame purple."),
    ("CHEMISTRY", "Metal Corrosion", "color", "the patina on an old copper roof", "green",
     "The patina on old copper is green."),
    ("CHEMISTRY", "Chemical Properties", "color", "pure sulfur", "yellow", "Pure sulfur is yellow."),
    ("CHEMISTRY", "Chemical Properties", "color", "a lump of charcoal", "black", "Charcoal is black."),
]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def make_item(rng: np.random.Generator, category: str) -> dict:
    """One WISE-style item of ``category``: {prompt, explanation, hint, category, subcategory, requirement}."""
    cat, sub, kind, phrase, value, reason = pick(rng, [f for f in FACTS if f[0] == category])
    shape, color = pick(rng, SHAPES), pick(rng, COLOR_NAMES)
    if kind == "color":
        n = 1 if rng.random() < 0.7 else 2
        req = Requirement(({"count": n, "color": value, "shape": shape},))
        noun = "a " + shape if n == 1 else f"{number_word(n)} {PLURALS[shape]}"
        prompt = f"{noun} in the color of {phrase}"
    elif kind == "shape":
        req = Requirement(({"count": 1, "color": color, "shape": value},))
        prompt = f"a {color} {phrase}"
    elif kind == "count":
        req = Requirement(({"count": value, "color": color, "shape": shape},))
        prompt = f"as many {color} {PLURALS[shape]} {phrase}"
    else:
        shape2 = pick(rng, [s for s in SHAPES if s != shape])
        color2 = pick(rng, COLOR_NAMES)
        a, b = {"count": 1, "color": color, "shape": shape}, {"count": 1, "color": color2, "shape": shape2}
        if kind == "relation":
            req = Requirement((a, b), value)
            prompt = f"{group_phrase(a)} {phrase} {group_phrase(b)}"
            if sub == "geographical location":
                prompt += ", as drawn on a map"
        else:  # size: the near object is drawn large, the far one small
            req = Requirement((dict(a, size="large"), dict(b, size="small")))
            prompt = f"{group_phrase(a)} {phrase} and {group_phrase(b)} far away from it"
    explanation = f"{reason} So the image should show {req.text()}. {req.sentence()}"
    return {"prompt": _cap(prompt), "explanation": explanation, "hint": reason, "category": cat,
            "subcategory": sub, "requirement": req}


def requirement_scene(req: Requirement, rng: np.random.Generator) -> Scene:
    """A random scene that satisfies ``req`` exactly (relations with a safety margin)."""
    specs = [{k: g[k] for k in ("shape", "color", "size") if g.get(k)} for g in req.groups for _ in range(g["count"])]

    def ok(scene: Scene) -> bool:
        if not req.satisfied_by(scene):
            return False
        return req.relation is None or stable_relation(scene.objects[0], scene.objects[1]) == req.relation

    return sample_until(rng, ok, tries=2000, n=len(specs), objects=specs)


def category_counts(n: int) -> dict[str, int]:
    """WISE's category shares applied to ``n`` prompts (largest remainder, at least one each when n >= 6)."""
    raw = {k: v[2] * n for k, v in CATEGORIES.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: -(raw[k] - out[k]))[: n - sum(out.values())]:
        out[k] += 1
    if n >= len(CATEGORIES):
        for k in out:
            if out[k] == 0:
                big = max(out, key=out.get)
                out[big] -= 1
                out[k] = 1
    return out
