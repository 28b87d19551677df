"""World datasets: exact benchmark schemas, answers that agree with the (parsed) images, determinism."""
import ast
import hashlib
import json
import re
from collections import Counter

import pytest
from PIL import Image

import harness.world as W
from harness.world import answer_choice, answer_question, parse_scene, tokenize, vocabulary
from harness.world.grammar import parse_requirement
from harness.world.render import render
from harness.world.scene import rng_for
from harness.world.questions import stable_relation
from tasks.geneval.world import TAG_COUNTS, reference_scene as geneval_scene
from tasks.mmmu.world import solve as solve_mmmu
from tasks.naturalbench.world import solve as solve_nb
from tasks.wise.world import reference_scene as wise_scene
from tasks.world import TEXTS, build, names

SCHEMAS = {
    "vqav2": {"question_type": str, "multiple_choice_answer": str, "answers": list, "image_id": int,
              "answer_type": str, "question_id": int, "question": str, "image": Image.Image},
    "mmmu": {"id": str, "question": str, "options": str, "explanation": str, "img_type": str, "answer": str,
             "topic_difficulty": str, "question_type": str, "subfield": str,
             **{f"image_{k}": (Image.Image, type(None)) for k in range(1, 8)}},
    "pope": {"id": str, "question_id": str, "question": str, "answer": str, "image_source": str,
             "image": Image.Image, "category": str},
    "mmbench": {"index": int, "question": str, "hint": (str, type(None)), "answer": str,
                **{k: (str, type(None)) for k in "ABCD"}, "category": str, "L2-category": str,
                "image": Image.Image, "source": str, "comment": (str, type(None)), "split": str},
    "naturalbench": {"Index": int, "Image_0": Image.Image, "Image_1": Image.Image, "Question_0": str,
                     "Image_0_Question_0": str, "Image_1_Question_0": str, "Question_1": str,
                     "Image_0_Question_1": str, "Image_1_Question_1": str, "Question_Type": str, "Source": str},
    "wise": {"Prompt": str, "Explanation": str, "Category": str, "Subcategory": str, "prompt_id": int, "Hint": str},
}
SCHEMAS["advqa"] = SCHEMAS["vqav2"]
_CACHE: dict = {}
_PARSED: dict = {}


def parsed(image):
    """parse_scene, once per image object (rows of one scene share their image)."""
    key = id(image)
    if key not in _PARSED:
        _PARSED[key] = (image, parse_scene(image))  # keep the image alive so its id stays unique
    return _PARSED[key][1]


def rows(name):
    if name not in _CACHE:
        _CACHE[name] = build(name)
    return _CACHE[name]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_columns_and_types(name):
    data = rows(name)
    assert data
    for r in data:
        assert set(r) == set(SCHEMAS[name]), name
        for col, typ in SCHEMAS[name].items():
            assert isinstance(r[col], typ) and not isinstance(r[col], bool), (name, col, r[col])


def _digest(data) -> str:
    h = hashlib.sha256()
    for r in data:
        if isinstance(r, tuple):
            r = {"name": r[0], "image": r[1]}
        plain = {k: v for k, v in r.items() if not isinstance(v, Image.Image)}
        h.update(json.dumps(plain, sort_keys=True, default=str).encode())
        for k in sorted(r):
            if isinstance(r[k], Image.Image):
                h.update(r[k].tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", names())
def test_builders_are_deterministic(name):
    small = {"pope": {"n_images": 4}, "unified_bench": {"n": 10}}.get(name, {"n": 12})
    assert _digest(build(name, seed=3, **small)) == _digest(build(name, seed=3, **small))
    assert _digest(build(name, seed=3, **small)) != _digest(build(name, seed=4, **small))


def test_registry():
    assert isinstance(W.WORLD_VERSION, str) and W.WORLD_VERSION
    assert set(names()) == {"vqav2", "advqa", "mmmu", "pope", "mmbench", "naturalbench", "geneval", "wise",
                              "unified_bench"}
    assert len(build("UnifiedBench", n=3)) == 3
    assert len(build("geneval", n=6, size=64)) == 6  # size is ignored by text-only builders
    with pytest.raises(KeyError):
        build("imagenet")


@pytest.mark.parametrize("name", ["vqav2", "advqa"])
def test_vqa_answers_agree_with_parsed_images(name):
    types = Counter()
    for r in rows(name):
        assert answer_question(r["question"], parsed(r["image"])) == r["multiple_choice_answer"], r["question"]
        answers = r["answers"]
        assert [a["answer_id"] for a in answers] == list(range(1, 11))
        assert all(a["answer_confidence"] in ("yes", "maybe", "no") for a in answers)
        counts = Counter(a["answer"] for a in answers)
        top, k = counts.most_common(1)[0]
        assert top == r["multiple_choice_answer"] and k >= 6  # strict majority: VQA accuracy 1.0
        assert r["answer_type"] in ("yes/no", "number", "other")
        types[r["answer_type"]] += 1
        assert r["question_id"] // 1000 == r["image_id"]
    assert set(types) == {"yes/no", "number", "other"}
    assert len({r["question_id"] for r in rows(name)}) == len(rows(name))


def test_vqa_annotators_vary_realistically():
    all_answers = [a["answer"] for r in rows("vqav2") for a in r["answers"]]
    assert "two" in all_answers or "one" in all_answers
    assert any(a in ("Yes", "yes.", "No", "no.") for a in all_answers)
    assert sum(len({a["answer"] for a in r["answers"]}) > 1 for r in rows("vqav2")) > len(rows("vqav2")) // 2
    yn = Counter(r["multiple_choice_answer"] for r in rows("vqav2") if r["answer_type"] == "yes/no")
    assert abs(yn["yes"] - yn["no"]) <= 0.25 * (yn["yes"] + yn["no"])


def test_advqa_is_harder_than_vqav2():
    fams = {"not", " or ", "corners", "leftmost", "rightmost", "topmost", "bottommost", "same color", "object "}
    hard = sum(any(f in r["question"] for f in fams) for r in rows("advqa"))
    assert hard >= 0.6 * len(rows("advqa"))
    assert all(len(parsed(r["image"]).objects) >= 3 for r in rows("advqa"))


def test_mmmu_answers_ids_and_multi_image():
    data = rows("mmmu")
    subjects = Counter(r["id"].rsplit("_", 1)[0].split("_", 1)[1] for r in data)
    assert len(subjects) >= 5 and set(subjects) <= {"Math", "Art", "Design", "Physics", "Geography",
                                                      "Computer_Science"}
    assert len({r["id"] for r in data}) == len(data)
    assert {r["question_type"] for r in data} == {"multiple-choice", "open"}
    assert any(r["image_2"] is not None and "<image 2>" in r["question"] for r in data)
    for r in data:
        assert re.fullmatch(r"validation_[A-Za-z_]+_\d+", r["id"])
        assert "<image 1>" in r["question"]
        options = ast.literal_eval(r["options"])
        assert isinstance(options, list)
        if r["question_type"] == "multiple-choice":
            assert r["answer"] in "ABCDEFGHI"[: len(options)] and len(options) >= 2
        else:
            assert options == []
        assert solve_mmmu(r) == r["answer"], r["id"]
        for k in range(1, 8):
            if f"<image {k}>" not in r["question"]:
                assert k == 1 or r[f"image_{k}"] is None


def _pope_class(question):
    return tuple(re.match(r"Is there a (\w+) (\w+) in the image\?", question).groups())


def test_pope_balance_and_split_definitions():
    data = rows("pope")
    assert Counter(r["category"] for r in data) == {"random": 180, "popular": 180, "adversarial": 180}
    for r in data:
        assert answer_question(r["question"], parsed(r["image"])) == r["answer"]
    per = Counter((r["category"], r["image_source"], r["answer"]) for r in data)
    assert set(per.values()) == {3}
    for cat in ("random", "popular", "adversarial"):  # POPE order: yes, no, yes, no, ...
        assert [r["answer"] for r in data if r["category"] == cat][:6] == ["yes", "no"] * 3
    # recompute the popular / adversarial negatives from the images alone, following POPE's construction
    sources = list(dict.fromkeys(r["image_source"] for r in data))
    image = {r["image_source"]: r["image"] for r in data}
    objects = {}
    for src in sources:
        yes = [_pope_class(r["question"]) for r in data
               if r["category"] == "popular" and r["image_source"] == src and r["answer"] == "yes"]
        present = {(o.color, o.shape) for o in parsed(image[src]).objects}
        assert set(yes) <= present and len(present) - len(yes) <= 1
        objects[src] = yes + sorted(present - set(yes))  # the asked objects come first
    first_seen = list(dict.fromkeys(c for src in sources for c in objects[src]))
    freq = Counter(c for src in sources for c in objects[src])
    for cat in ("popular", "adversarial"):
        for src in sources:
            objs, history, want = objects[src], [], []
            got = [_pope_class(r["question"]) for r in data
                   if r["category"] == cat and r["image_source"] == src and r["answer"] == "no"]
            for i, pos in enumerate(objs[:3]):
                history.append(pos)
                if cat == "popular":
                    ranked = sorted(first_seen, key=lambda c: (-freq[c], first_seen.index(c)))
                else:
                    others = [o for s in sources if pos in objects[s] for o in objects[s] if o != pos]
                    seen = list(dict.fromkeys(others))
                    ranked = sorted(seen, key=lambda c: (-others.count(c), seen.index(c)))
                neg = next((c for c in ranked if c not in history and c not in objs), None)
                history.append(neg or got[i])  # None: POPE falls back to a random class
                want.append(neg)
            assert [g for g, w in zip(got, want) if w is not None] == [w for w in want if w is not None], (cat, src)


def test_mmbench_circular_rotation():
    data = rows("mmbench")
    base = {r["index"]: r for r in data if r["index"] < 1_000_000}
    assert len(data) == 4 * len(base)
    assert {r["L2-category"] for r in data} == {
        "coarse_perception", "finegrained_perception (instance-level)", "finegrained_perception (cross-instance)",
        "attribute_reasoning", "relation_reasoning", "logic_reasoning"}
    for r in data:
        b = base[r["index"] % 1_000_000]
        k = r["index"] // 1_000_000
        assert [r[x] for x in "ABCD"] == [b["ABCD"[(j + k) % 4]] for j in range(4)]
        assert r[r["answer"]] == b[b["answer"]]
        assert r["question"] == b["question"] and r["image"] is b["image"]
        idx = answer_choice(r["question"], [r[x] for x in "ABCD"], parsed(r["image"]))
        assert idx is not None and "ABCD"[idx] == r["answer"], r["question"]


def test_naturalbench_answer_pattern():
    data = rows("naturalbench")
    assert [r["Index"] for r in data] == list(range(len(data)))
    assert {r["Question_Type"] for r in data} == {"yes_no", "multiple_choice"}
    for r in data:
        yes, no = ("Yes", "No") if r["Question_Type"] == "yes_no" else ("A", "B")
        assert (r["Image_0_Question_0"], r["Image_1_Question_0"], r["Image_0_Question_1"],
                r["Image_1_Question_1"]) == (yes, no, no, yes)
        for q in (0, 1):
            for i in (0, 1):
                assert solve_nb(r[f"Question_{q}"], r[f"Image_{i}"], r["Question_Type"]) == r[f"Image_{i}_Question_{q}"]


def test_geneval_metadata():
    data = rows("geneval")
    tags = Counter(r["tag"] for r in data)
    assert set(tags) == set(TAG_COUNTS)
    for tag, k in tags.items():  # GenEval's proportions within rounding
        assert abs(k / len(data) - TAG_COUNTS[tag] / 553) < 0.03
    for i, r in enumerate(data):
        assert list(r)[:2] == ["tag", "include"] and list(r)[-1] == "prompt"
        assert r["prompt"].startswith("a photo of ")
        if r["tag"] == "counting":
            (inc,), (exc,) = r["include"], r["exclude"]
            assert exc == {"class": inc["class"], "count": inc["count"] + 1}
        else:
            assert "exclude" not in r
        scene = parse_scene(render(geneval_scene(r, rng_for("eval", "test-geneval", i))))
        for clause in r["include"]:
            found = scene.select(shape=clause["class"], color=clause.get("color"))
            assert len(found) >= clause["count"]
            if "position" in clause:
                rel, g = clause["position"]
                target = scene.select(shape=r["include"][g]["class"])[0]
                assert stable_relation(found[0], target) == rel
    assert {"a photo of a circle", "a photo of two squares"} & {r["prompt"] for r in build("geneval", n=200)}


def test_wise_rows():
    data = rows("wise")
    cats = Counter(r["Category"] for r in data)
    assert set(cats) == {"Cultural knowledge", "time", "Space", "Biology", "Physical Knowledge", "Chemistry"}
    assert cats["Cultural knowledge"] == 20
    ranges = {"Cultural knowledge": (1, 400), "time": (401, 567), "Space": (568, 700), "Biology": (701, 800),
              "Physical Knowledge": (801, 900), "Chemistry": (901, 1000)}
    for r in data:
        lo, hi = ranges[r["Category"]]
        assert lo <= r["prompt_id"] <= hi
        assert re.search(r"Expected: [^.]+\.$", r["Explanation"])
        req = parse_requirement(r["Explanation"])
        assert req is not None and req.sentence() in r["Explanation"]
        assert req.satisfied_by(parse_scene(render(wise_scene(r, rng_for("eval", "test-wise", r["prompt_id"])))))
    assert len({r["prompt_id"] for r in data}) == len(data)


def test_unified_bench_reference_images():
    data = rows("unified_bench") if "unified_bench" in _CACHE else build("unified_bench")
    assert [name for name, _ in data] == [f"{i}.png" for i in range(100)]
    assert all(isinstance(img, Image.Image) and img.size == (64, 64) for _, img in data)


def test_vocabulary_covers_every_model_facing_text():
    vocab = set(vocabulary(TEXTS))
    assert vocab == {t.lower() for t in vocab} and "?" in vocab and "<" in vocab
    fields = {"vqav2": ["question", "multiple_choice_answer"], "advqa": ["question", "multiple_choice_answer"],
              "mmmu": ["question", "options", "answer"], "pope": ["question", "answer"],
              "mmbench": ["question", "hint", "A", "B", "C", "D"], "wise": ["Prompt", "Explanation", "Hint"],
              "naturalbench": ["Question_0", "Question_1", "Image_0_Question_0", "Image_1_Question_0"],
              "geneval": ["prompt"]}
    texts = [str(r[f] or "") for name, fs in fields.items() for r in rows(name) for f in fs]
    texts += [a["answer"] for r in rows("vqav2") + rows("advqa") for a in r["answers"]]
    for ex in W.training_examples(60, seed=5):
        texts += ex["captions"] + ex["prompts"] + [q["question"] + " " + q["answer"] for q in ex["qa"]]
        texts += [q["question"] + " " + " ".join(q["options"]) for q in ex["mc"]]
    missing = {t for text in texts for t in tokenize(text)} - vocab
    assert not missing


def test_training_examples_streams():
    train = W.training_examples(20, seed=0)
    again = W.training_examples(20, seed=0)
    held = W.training_examples(20, seed=0, split="eval")
    assert [e["scene"] for e in train] == [e["scene"] for e in again]
    assert not {json.dumps(e["scene"]) for e in train} & {json.dumps(e["scene"]) for e in held}
    for e in train:
        scene = parse_scene(e["image"])
        assert e["captions"] and e["prompts"] and e["qa"]
        for q in e["qa"]:
            assert answer_question(q["question"], scene) == q["answer"]
        for q in e["mc"]:
            assert answer_choice(q["question"], q["options"], scene) == q["answer"]
