"""GenEval: generate 4 images per prompt -> detect objects -> classify colours -> GenEval's rules -> task mean.

Stages: `generate` (sample k = 0..n_images-1, each with its own derived seed), `detect` (one request per generated
image), `colour` (one CLIP zero-shot request per object a colour clause looks at; absent when the detector names
colours itself, as the world's parser does). `process` applies scoring.evaluate with GenEval's default thresholds
and `aggregate` is scoring.summarize: Overall = mean of the tag accuracies present.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from harness.errors import DataError, HarnessError
from harness.export import first_image
from harness.metrics import Metric, mean
from harness.masks import rle_decode
from harness.task import DatasetInfo, MODEL, Stage, Task, data_kind, generate, score, scorer_target
from harness.types import Response
from tasks.common import INCORRECT_OR_EXCLUDE, failure_mode
from tasks.downloads import cached_file, sha256_file

from . import scoring

REPO, COMMIT = "djghosh13/geneval", "af4902f"
METADATA_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/prompts/evaluation_metadata.jsonl"
METADATA_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
N_IMAGES = 4
# GenEval's object_names.txt (the detector's label names) renames three COCO classes; the transformers checkpoint's
# id2label uses the COCO names, so detections are renamed before GenEval's metadata classes look them up.
COCO_TO_GENEVAL = {"mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard"}
REAL_DEVIATION = ("detector: transformers Mask2Former (facebook/mask2former-swin-small-coco-instance) in place of "
                  "GenEval's mmdetection 2.x mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco (mmcv-full does not "
                  "install on current PyTorch); verdicts can differ on borderline objects")
# equal detector scores: the order filter_detections keeps, beside what the official sort does with them
TIES = ("equal scores keep the detector's order (a stable descending sort); the official "
        "detections[np.argsort(scores)[::-1]] reverses them where numpy's sort is stable and leaves them in an "
        "arbitrary order elsewhere, so which of two equally confident objects is counted, coloured or positioned "
        "can differ from a given official run")
WORLD_DEVIATION = ("detector: the embedded world's exact scene parser (world_detector); colours come from the "
                   "parser's palette match instead of CLIP zero-shot classification")


class GenEval(Task):
    """GenEval (553 prompts, 4 images each) with the official thresholds (0.3; 0.9 on counting), no NMS, max 16
    objects per class, position margin 0.1. Failed generations, detections or colour classifications make that
    image incorrect and are counted in details.failures; profile exclude_failures (or the option
    failure_mode="exclude") leaves such images out instead, as evaluate_images.py scores only the image files
    present (a prompt folder holding 3 of its 4 images, say), and still counts them.

    Data: default the official prompts/evaluation_metadata.jsonl (djghosh13/geneval@af4902f, pinned by sha256;
    fetched into the harness cache when online); `--data PATH` a metadata jsonl (or a folder holding
    evaluation_metadata.jsonl); `--data shapes` the world's metadata (shapes as classes), scored with the
    world_detector. Options (--task-args): n_images (4), size (image size asked of the model; default the model's
    own), detector / classifier (scorer names; classifier null = colours from the detector), object_names (GenEval's
    object_names.txt as the detector's label names), position_threshold (official option, default 0.1),
    world_n / world_seed, failure_mode. Equal detector scores keep the detector's order (settings.ties says how
    that differs from the official sort).
    """

    name = "geneval"
    model_kinds = ("generate",)
    data_sources = ("release", "path", "shapes")     # its default is not a hub dataset
    version = "1"
    description = "GenEval: object-focused text-to-image alignment, mean of six tag accuracies"
    profiles = ("official", "exclude_failures")
    headline = "overall"
    options_help = {
        "n_images": "images per prompt (default 4, as GenEval's generator)",
        "size": "image size asked of the model (int or [w, h]; default the model's own)",
        "detector": "detector scorer (default detector; world_detector with --data shapes)",
        "classifier": "colour classifier scorer (default clip_openclip; null = the detector's own colours)",
        "object_names": "GenEval's prompts/object_names.txt: the detector's label names by id (default: the "
                        "checkpoint's COCO names with GenEval's three renames)",
        "position_threshold": "relative_position's margin, GenEval's --options position_threshold (default 0.1)",
        "failure_mode": "incorrect (an image that failed or is missing counts as incorrect, default) or exclude "
                        "(left out, as evaluate_images.py scores only the image files present)",
        "world_n": "--data shapes: number of world prompts (default 60)",
        "world_seed": "--data shapes: world seed (default 0)",
    }
    # position_threshold is checked by _non_negative below (a number and >= 0)
    option_types = {"n_images": "int", "size": "size?", "detector": "str", "classifier": "str?",
                    "object_names": "str", "failure_mode": INCORRECT_OR_EXCLUDE, "world_n": "int", "world_seed": "int"}

    def __init__(self, data=None, profile=None, limit=None, **options):
        super().__init__(data, profile, limit, **options)
        self.n_images = int(options.get("n_images", N_IMAGES))
        if self.n_images < 1:
            raise DataError("geneval: n_images must be at least 1")
        self.size = options.get("size")
        self.shapes = data_kind(data) == "shapes"
        self.detector = options.get("detector") or ("world_detector" if self.shapes else "detector")
        self.classifier = options.get("classifier", None if self.shapes else "clip_openclip")
        self.class_names = _object_names(options["object_names"]) if options.get("object_names") else None
        self.position_threshold = _non_negative(options.get("position_threshold", scoring.POSITION_THRESHOLD),
                                                "position_threshold")
        self.failure_mode = failure_mode(self, INCORRECT_OR_EXCLUDE)

    # --- data -------------------------------------------------------------------------------------------------
    def load(self):
        kind = data_kind(self.data)
        if kind == "shapes":
            path, info = self._world_file()
        elif kind == "path":
            path = Path(self.data).expanduser()
            if path.is_dir():
                path = path / "evaluation_metadata.jsonl"
            if not path.is_file():
                raise DataError(f"--data {self.data}: no GenEval metadata file (evaluation_metadata.jsonl) there")
            digest = sha256_file(path)
            info = DatasetInfo("path", str(path), sha256=digest,
                               extra={"official_file": True} if digest == METADATA_SHA256 else {})
        else:
            path = cached_file(METADATA_URL, f"geneval/{COMMIT}/evaluation_metadata.jsonl", sha256=METADATA_SHA256,
                               what=f"GenEval's prompts/evaluation_metadata.jsonl ({REPO}@{COMMIT})",
                               alternative="or pass --data PATH to a copy of it")
            # the benchmark's own published file: recorded as its default ("hub") source, name = repo:path
            info = DatasetInfo("hub", f"{REPO}:prompts/evaluation_metadata.jsonl", revision=COMMIT,
                               sha256=METADATA_SHA256, extra={"url": METADATA_URL})
        try:
            entries = scoring.load_metadata(path)
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(str(e).splitlines()[0]) from None
        docs = [{"doc_id": f"{i:05d}", "index": i, "tag": e["tag"], "prompt": e["prompt"], "metadata": e}
                for i, e in enumerate(entries)]
        return docs, info

    def _world_file(self) -> tuple[Path, DatasetInfo]:
        """The world's metadata written once as evaluation_metadata.jsonl and read by the same loader as PATH."""
        from harness.store import cache_root
        from harness.world import WORLD_VERSION

        from .world import build_geneval

        n, seed = int(self.options.get("world_n", 60)), int(self.options.get("world_seed", 0))
        path = cache_root() / "world" / WORLD_VERSION / f"geneval-n{n}-s{seed}" / "evaluation_metadata.jsonl"
        if not path.is_file():
            from harness.store import write_text

            write_text(path, "".join(json.dumps(r) + "\n" for r in build_geneval(n=n, seed=seed)))
        return path, DatasetInfo("shapes", "geneval", revision=WORLD_VERSION, sha256=sha256_file(path),
                                 extra={"options": {"n": n, "seed": seed}})

    def read_image_folder(self, folder: Path) -> dict[str, Path]:
        """`score --images`: GenEval's own layout (tasks/geneval/images.py); n_images defaults to the folder's."""
        from .images import read_folder

        explicit = int(self.options["n_images"]) if "n_images" in self.options else None
        files, self.n_images = read_folder(folder, self.docs(), explicit)
        return files

    # --- requests ---------------------------------------------------------------------------------------------
    def stages(self):
        stages = [Stage("generate", self._build_generate, uses=(MODEL,)),
                  Stage("detect", self._build_detect, uses=(scorer_target(self.detector),))]
        if self.classifier:
            stages.append(Stage("colour", self._build_colour, uses=(scorer_target(self.classifier),)))
        return stages

    def _build_generate(self, doc, out):
        params = {"size": self.size} if self.size else {}
        return [generate(doc["prompt"], ref=f"{doc['doc_id']}/{k}", sample=k, **params)
                for k in range(self.n_images)]

    def _build_detect(self, doc, out):
        # detections at or below GenEval's lowest threshold can never count: the detector need not return them
        params = {"min_score": scoring.THRESHOLD}
        if self.class_names:
            params["class_names"] = self.class_names
        return [score(self.detector, "detect", images=[out["generate"][k].images[0]], ref=f"{doc['doc_id']}/{k}",
                      **params) for k in _generated(out)]

    def _build_colour(self, doc, out):
        reqs = []
        for k, cls, index, det in _colour_jobs(doc, out):
            image = out["generate"][k].images[0]
            mask = rle_decode(det["mask"]) if isinstance(det.get("mask"), dict) else None
            crop = scoring.colour_crop(image.pil(), det["box"], mask)
            reqs.append(score(self.classifier, "classify", images=[crop], ref=f"{doc['doc_id']}/{k}/{cls}/{index}",
                              classnames=list(scoring.COLORS), prompts=scoring.colour_prompts(cls)))
            image.release()
        return reqs

    # --- scoring ----------------------------------------------------------------------------------------------
    def process(self, doc, outputs):
        detections = _detections(outputs)
        colours: dict[tuple, Response] = {}
        if self.classifier:
            colours = dict(zip([j[:3] for j in _colour_jobs(doc, outputs)], outputs.get("colour", [])))
        images = []
        for k in range(self.n_images):
            images.append(self._verdict(doc, k, outputs["generate"][k], detections.get(k), colours))
        return {"index": doc["index"], "tag": doc["tag"], "prompt": doc["prompt"], "metadata": doc["metadata"],
                "images": images, "n_correct": sum(im["correct"] for im in images)}

    def _verdict(self, doc, k, gen: Response, det: Response | None, colours) -> dict:
        def failed(stage, why):
            return {"sample": k, "correct": False, "failed": stage, "reason": f"{stage} failed: {why}"}

        if gen is None or not gen.ok or not gen.images:
            return failed("generate", (gen.error if gen is not None else None) or "no image")
        if det is None or not det.ok:
            return failed("detect", (det.error if det is not None else None) or "no output")
        dets = _renamed(det.values.get("detections", {}))
        if self.classifier:
            mapping: dict[str, list] = {c: [None] * len(v) for c, v in dets.items()}
            for (kk, cls, index), resp in colours.items():
                if kk != k:
                    continue
                if not resp.ok:
                    return failed("colour", resp.error)
                mapping[cls][index] = (resp.values or {}).get("label")
            colour_of = mapping
        else:
            def colour_of(cls, source):
                return source.get("color")
        try:
            correct, reason = scoring.evaluate(dets, doc["metadata"], colour_of,
                                               position_threshold=self.position_threshold)
        except ValueError as e:          # malformed detections or a colour outside GenEval's ten
            return failed("score", e)
        return {"sample": k, "correct": bool(correct), "failed": None, "reason": reason}

    def aggregate(self, records):
        keep_failed = self.failure_mode == "incorrect"
        flat = [{"tag": r["tag"], "prompt_id": r["index"], "correct": im["correct"]}
                for r in records for im in r["images"] if keep_failed or not im["failed"]]
        failures: dict[str, int] = {}
        for r in records:
            for im in r["images"]:
                if im["failed"]:
                    failures[im["failed"]] = failures.get(im["failed"], 0) + 1
        if not flat:
            return {"overall": Metric(None, None, 0),
                    "details": {"failures": failures, "n_failed": sum(failures.values()),
                                "failure_mode": self.failure_mode}}
        s = scoring.summarize(flat)
        per_tag = {t: mean([float(x["correct"]) for x in flat if x["tag"] == t]) for t in s["per_tag"]}
        errors = [m.stderr for m in per_tag.values()]
        # Overall is a mean of independent tag means: its stderr combines theirs
        stderr = (math.sqrt(sum(e * e for e in errors)) / len(errors)) if all(e is not None for e in errors) else None
        metrics = {"overall": Metric(s["overall"], stderr, s["n_images"]), **per_tag,
                   "correct_images": mean([float(x["correct"]) for x in flat]),
                   "correct_prompts": Metric(s["correct_prompts"], None, s["n_prompts"])}
        metrics["details"] = {"per_tag_counts": s["per_tag_counts"], "tags_missing": s["tags_missing"],
                              "n_images": s["n_images"], "n_prompts": s["n_prompts"],
                              "failures": failures, "n_failed": sum(failures.values()),
                              "failure_mode": self.failure_mode,
                              "informational": ["correct_images", "correct_prompts"]}
        return metrics

    def settings(self):
        return {"n_images": self.n_images, "image_size": self.size or "model default",
                "prompt": "the metadata prompt as is (no rewriting)", "detector": self.detector,
                "colour_classifier": self.classifier or "the detector's own colour",
                "colour_templates": list(scoring.COLOR_TEMPLATES) if self.classifier else None,
                "thresholds": {"threshold": scoring.THRESHOLD, "counting_threshold": scoring.COUNTING_THRESHOLD,
                               "max_objects": scoring.MAX_OBJECTS, "max_overlap": scoring.MAX_OVERLAP,
                               "position_threshold": self.position_threshold,
                               "crop_background": scoring.BACKGROUND},
                "ties": TIES,
                "failure_rule": ("a failed or missing image is incorrect and counted"
                                 if self.failure_mode == "incorrect" else
                                 "failed or missing images are left out and counted (evaluate_images.py scores the "
                                 "files present)"),
                "class_names": "world shapes" if self.shapes else
                f"object_names {self.options['object_names']}" if self.class_names else
                f"the checkpoint's COCO names with GenEval's renames {COCO_TO_GENEVAL}",
                "deviation": WORLD_DEVIATION if self.detector == "world_detector" else REAL_DEVIATION,
                "source_commit": f"{REPO}@{COMMIT}"}

    export_layout = "geneval"

    @classmethod
    def export_images(cls, samples, writer):
        """GenEval's evaluate_images.py layout: <00000>/metadata.jsonl (that prompt's line) and samples/0000.png...
        in sample order. A failed sample has no file (the official script then scores fewer images)."""
        for line in samples:
            record = line.get("record") or {}
            if "metadata" not in record or "index" not in record:
                raise HarnessError(f"samples.jsonl: document {line.get('doc_id')!r} has no GenEval metadata in its "
                                   "record")
            folder = f"{int(record['index']):05d}"
            writer.text(f"{folder}/metadata.jsonl", json.dumps(record["metadata"]) + "\n")
            for entry in (line.get("requests") or {}).get("generate") or []:
                writer.image(first_image(entry), f"{folder}/samples/{_sample_of(entry):04d}.png")


def _non_negative(value, option: str) -> float:
    """A --task-args number: a real >= 0 (GenEval reads its --options as floats)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise DataError(f"--task-args for geneval: {option} must be a number >= 0, got {value!r}")
    return number


def _object_names(path) -> list[str]:
    try:
        names = [n.strip() for n in Path(path).expanduser().read_text(encoding="utf-8").splitlines() if n.strip()]
    except OSError as e:
        raise DataError(f"object_names {path}: cannot read ({e.strerror})") from None
    if len(names) != 80 or len(set(names)) != 80:
        raise DataError(f"object_names {path}: expected GenEval's 80 distinct class names, one per line")
    return names


def _generated(out) -> list[int]:
    """Samples whose generation produced an image, in sample order (the detect stage's request order)."""
    return [k for k, r in enumerate(out.get("generate", [])) if r is not None and r.ok and r.images]


def _detections(out) -> dict[int, Response]:
    return dict(zip(_generated(out), out.get("detect", [])))


def _renamed(detections: dict) -> dict:
    return {COCO_TO_GENEVAL.get(c, c): v for c, v in (detections or {}).items()}


def _colour_jobs(doc, out) -> list[tuple]:
    """(sample, class, detection index, detection) for every object a colour clause looks at, in a fixed order:
    the colour stage builds its requests from this list and `process` reads the answers back with it."""
    jobs, seen = [], set()
    for k, det in _detections(out).items():
        if not det.ok:
            continue
        dets = _renamed(det.values.get("detections", {}))
        try:
            objects = scoring.filter_detections(dets, doc["tag"])
        except ValueError:
            continue                     # process reports the malformed detections
        for clause in doc["metadata"]["include"]:
            if "color" not in clause:
                continue
            found = objects.get(clause["class"], [])[:clause["count"]]
            if len(found) < clause["count"]:
                continue                 # the clause fails on the count; GenEval classifies nothing
            for d in found:
                if (k, clause["class"], d.index) not in seen:
                    seen.add((k, clause["class"], d.index))
                    jobs.append((k, clause["class"], d.index, d.source))
    return jobs


def _sample_of(entry: dict) -> int:
    """The sample index, from the request's ref "<doc>/<k>" (samples.jsonl keeps requests, not sample numbers)."""
    ref = str(entry.get("ref", ""))
    tail = ref.rsplit("/", 1)[-1]
    if not tail.isdigit():
        raise HarnessError(f"samples.jsonl: a generate request has no sample number in its ref {ref!r}")
    return int(tail)
