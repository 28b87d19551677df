"""UnifiedBench ("Protocol-1"): caption each reference image with the model -> regenerate an image from that
caption -> compare reconstruction and reference under each backbone -> per-backbone mean (0-100) -> Overall.

Two backbone sets (never compared with each other; results record settings.backbone_set): `unified_bench` uses
UniGame's CLIP, SigLIP, DINOv2, DreamSim; `unified_bench_uae` UAE's release set CLIP, LongCLIP, DINOv2, DINOv3.
On `--data shapes` the set is "world": the world's scene similarity (real backbones need downloaded weights), plus
a `mismatched_overall` control that compares each reconstruction with a different reference image.
"""
from __future__ import annotations

import math
from pathlib import Path

from harness.data import content_sha256
from harness.store import cache_root
from harness.errors import DataError
from harness.export import first_image
from harness.metrics import Metric
from harness.options import as_bool
from harness.task import DatasetInfo, MODEL, Stage, Task, data_kind, generate, score, scorer_target, understand
from harness.types import Image
from tasks.common import failure_mode
from tasks.downloads import cached_zip_folder

from . import scoring

UAE_URL = "https://github.com/PKU-YuanGroup/UAE/releases/download/v1.0/Image.zip"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# UAE demo.py decoding for the caption; the request's derived seed makes the sample reproducible
CAPTION_PARAMS = {"max_new_tokens": 512, "do_sample": True, "temperature": 0.7}
# backbone -> (scorer, kind); embedders are asked once per image, so each image's embedding is cached by its hash
BACKBONES = {"clip": ("clip", "embed"), "siglip": ("siglip", "embed"), "dinov2": ("dinov2", "embed"),
             "dinov3": ("dinov3", "embed"), "longclip": ("longclip", "embed"),
             "dreamsim": ("dreamsim", "distance"), "scene": ("world_scene", "compare")}
SETS = {**scoring.BACKBONE_SETS, "world": ("scene",)}


class UnifiedBench(Task):
    """UnifiedBench Protocol-1 with UniGame's backbones (CLIP, SigLIP, DINOv2, DreamSim).

    Data: default UAE's 100 reference images (their v1.0 release Image.zip, fetched into the harness cache when
    online); `--data DIR` a folder of images (0.jpg ... or any names; doc id = file stem); `--data shapes` the
    world's reference images with the "world" backbone set. A failed round trip (caption, regeneration or a
    backbone's scorer) scores 0 for that image and is counted; profile exclude_failures (or the option
    failure_mode="exclude") drops it instead, as UAE's Score_i2i.py does. Options: size, backbone_set,
    failure_mode, world_n / world_seed / world_size.
    """

    name = "unified_bench"
    model_kinds = ("understand", "generate")
    data_sources = ("release", "path", "shapes")     # its default is not a hub dataset
    version = "1"
    description = "UnifiedBench Protocol-1: caption -> regenerate -> similarity (CLIP, SigLIP, DINOv2, DreamSim)"
    profiles = ("official", "exclude_failures")
    headline = "overall"
    display_scale = 1.0        # scores are already 0-100
    backbone_set = "unigame"
    options_help = {
        "size": "image size asked of the model for the reconstruction (default the model's own)",
        "backbone_set": "unigame, uae or world (default: the task's set; world with --data shapes)",
        "failure_mode": "zero (failed round trips score 0, default) or exclude (UAE's Score_i2i.py)",
        "mismatched": "also score each reconstruction against another reference (default on for world)",
        "world_n": "--data shapes: number of reference images (default 100)",
        "world_seed": "--data shapes: world seed (default 0)",
        "world_size": "--data shapes: reference image side in pixels (default 64)",
    }
    option_types = {"size": "size?", "backbone_set": "str?", "failure_mode": ("zero", "exclude"), "mismatched": "bool",
                    "world_n": "int", "world_seed": "int", "world_size": "int"}

    def __init__(self, data=None, profile=None, limit=None, **options):
        super().__init__(data, profile, limit, **options)
        self.shapes = data_kind(data) == "shapes"
        self.set = options.get("backbone_set") or ("world" if self.shapes else self.backbone_set)
        if self.set not in SETS:
            raise DataError(f"{self.name}: unknown backbone_set {self.set!r} (choose {', '.join(SETS)})")
        self.backbones = SETS[self.set]
        self.failure_mode = failure_mode(self, scoring.FAILURE_MODES)
        self.size = options.get("size")
        self.mismatched = as_bool(options.get("mismatched", self.set == "world"))
        self.from_folder = False        # reconstructions read from a folder (`score --images`): nothing to caption

    # --- data -------------------------------------------------------------------------------------------------
    def load(self):
        kind = data_kind(self.data)
        if kind == "shapes":
            folder, source, name, rev, extra = self._world_folder()
        elif kind == "path":
            folder, source, name, rev, extra = Path(self.data).expanduser(), "path", str(self.data), None, {}
        else:
            folder = cached_zip_folder(UAE_URL, "unified_bench/UAE-v1.0", marker="0.jpg",
                                       what="UnifiedBench's reference images (PKU-YuanGroup/UAE release v1.0 "
                                            "Image.zip)",
                                       alternative="or pass --data DIR to a folder of the images")
            source, name, rev, extra = "hub", "PKU-YuanGroup/UAE:Unified-Bench/UniBench/Image", "v1.0", {"url": UAE_URL}
        docs = image_docs(folder)
        if self.mismatched and len(docs) > 1:
            for i, doc in enumerate(docs):      # a cyclic shift: every image paired with another one
                doc["mismatch_image"] = docs[(i + 1) % len(docs)]["image"]
                doc["mismatch_name"] = docs[(i + 1) % len(docs)]["name"]
        digest = content_sha256([{"name": d["name"], "image": d["image"]} for d in docs])
        return docs, DatasetInfo(source, name, revision=rev, sha256=digest, extra=extra)

    def _world_folder(self):
        """The world's reference images written once as PNG files, then read like `--data DIR`."""
        import io

        from harness.store import write_bytes
        from harness.world import WORLD_VERSION

        from .world import build_unified_bench

        opts = {"n": int(self.options.get("world_n", 100)), "seed": int(self.options.get("world_seed", 0)),
                "size": int(self.options.get("world_size", 64))}
        folder = cache_root() / "world" / WORLD_VERSION / "unified_bench-n{n}-s{seed}-{size}".format(**opts)
        if not (folder / "complete").exists():
            for fname, pil in build_unified_bench(**opts):
                buf = io.BytesIO()
                pil.save(buf, format="PNG")
                write_bytes(folder / fname, buf.getvalue())
            write_bytes(folder / "complete", b"")
        return folder, "shapes", "unified_bench", WORLD_VERSION, {"options": opts}

    def read_image_folder(self, folder: Path) -> dict[str, Path]:
        """`score --images`: one reconstruction per reference image, paired as UAE's Score_i2i.py pairs them: the
        same file name, else the same stem, else recon_<stem>. A reference without one is a failed round trip."""
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        by_name = {p.name: p for p in files}
        by_stem: dict[str, list[Path]] = {}
        for p in files:
            by_stem.setdefault(p.stem, []).append(p)
        found = {}
        for doc in self.docs():
            stem = Path(doc["name"]).stem
            for candidates in ([by_name[doc["name"]]] if doc["name"] in by_name else [],
                               by_stem.get(stem, []), by_stem.get(f"recon_{stem}", [])):
                if len(candidates) > 1:
                    raise DataError(f"--images {folder}: {', '.join(sorted(p.name for p in candidates))} could all "
                                    f"be the reconstruction of {doc['name']}; keep one")
                if candidates:
                    found[doc["doc_id"]] = candidates[0]
                    break
        self.from_folder = True
        return found

    # --- requests ---------------------------------------------------------------------------------------------
    def stages(self):
        if self.from_folder:
            return [Stage("regenerate", lambda doc, out: [generate("", ref=doc["doc_id"])]),
                    Stage("score", self._build_score)]
        return [Stage("caption", lambda doc, out: [understand(scoring.CAPTION_PROMPT, [doc["image"]],
                                                              ref=doc["doc_id"], **CAPTION_PARAMS)], uses=(MODEL,)),
                Stage("regenerate", self._build_regenerate, uses=(MODEL,)),
                Stage("score", self._build_score,
                      uses=tuple(scorer_target(BACKBONES[b][0]) for b in self.backbones))]

    def _build_regenerate(self, doc, out):
        cap = out["caption"][0]
        if not cap.ok or not isinstance(cap.text, str):
            return []
        params = {"size": self.size} if self.size else {}
        return [generate(cap.text, ref=doc["doc_id"], **params)]

    def _build_score(self, doc, out):
        recon = _reconstruction(out)
        if recon is None:
            return []
        reqs = []
        for backbone, role in self._jobs(doc):
            scorer, kind = BACKBONES[backbone]
            ref = f"{doc['doc_id']}/{backbone}/{role}"
            if role == "reference":
                reqs.append(score(scorer, kind, images=[doc["image"]], ref=ref))
            elif role == "reconstruction":
                reqs.append(score(scorer, kind, images=[recon], ref=ref))
            elif role == "mismatched":
                reqs.append(score(scorer, kind, images=[doc["mismatch_image"], recon], ref=ref))
            elif kind == "distance":
                reqs.append(score(scorer, kind, images=[recon, doc["image"]], ref=ref))
            else:
                reqs.append(score(scorer, kind, images=[doc["image"], recon], ref=ref))
        return reqs

    def _jobs(self, doc) -> list[tuple[str, str]]:
        """(backbone, role) per score request, in request order (process reads the answers back with it)."""
        jobs = []
        for b in self.backbones:
            if BACKBONES[b][1] == "embed":
                jobs += [(b, "reference"), (b, "reconstruction")]
            else:
                jobs.append((b, "pair"))
        if self.mismatched and "mismatch_image" in doc:
            jobs += [(b, "mismatched") for b in self.backbones if BACKBONES[b][1] == "compare"]
        return jobs

    # --- scoring ----------------------------------------------------------------------------------------------
    def process(self, doc, outputs):
        rec = {"name": doc["name"], "caption": None, "failed": None, "error": None,
               "similarities": {b: None for b in self.backbones}}
        if not self.from_folder:
            cap = outputs["caption"][0]
            if not cap.ok or not isinstance(cap.text, str):
                return {**rec, "failed": "caption", "error": cap.error or "no caption"}
            rec["caption"] = cap.text
        if _reconstruction(outputs) is None:
            gen = outputs["regenerate"][0]
            return {**rec, "failed": "regenerate", "error": gen.error or "no image"}
        answers: dict[tuple, object] = dict(zip(self._jobs(doc), outputs["score"]))
        errors = {}
        for b in self.backbones:
            try:
                rec["similarities"][b] = self._similarity(b, answers)
            except (ValueError, KeyError, TypeError) as e:
                errors[b] = str(e)
        if errors:
            rec["failed"], rec["error"] = "score", errors
        if (doc.get("mismatch_name") is not None and self.mismatched):
            resp = answers.get(("scene", "mismatched"))
            rec["mismatched"] = resp.values["similarity"] if resp is not None and resp.ok else None
            rec["mismatched_with"] = doc["mismatch_name"]
        return rec

    @staticmethod
    def _similarity(backbone: str, answers) -> float:
        kind = BACKBONES[backbone][1]
        if kind == "embed":
            a, b = answers[(backbone, "reference")], answers[(backbone, "reconstruction")]
            for r in (a, b):
                if not r.ok:
                    raise ValueError(r.error)
            return float(scoring.cosine_similarity(a.values["embedding"], b.values["embedding"]))
        r = answers[(backbone, "pair")]
        if not r.ok:
            raise ValueError(r.error)
        if kind == "distance":
            return float(scoring.dreamsim_similarity(r.values["distance"]))
        return float(r.values["similarity"])

    def aggregate(self, records):
        sims = {b: [r["similarities"][b] for r in records] for b in self.backbones}
        if not records:
            return {"overall": Metric(None, None, 0), "details": {"backbone_set": self.set, "n_failed": 0}}
        if self.set in scoring.BACKBONE_SETS:
            agg = scoring.aggregate(sims, self.set, self.failure_mode)
            per, overall = agg["per_backbone"], agg["overall"]
        else:
            per = {b: scoring.backbone_score(sims[b], self.failure_mode) for b in self.backbones}
            scores = [p["score"] for p in per.values()]
            overall = None if None in scores else sum(scores) / len(scores)
        per_image = [self._image_mean(r) for r in records]
        metrics = {"overall": Metric(overall, _stderr([v for v in per_image if v is not None]),
                                     sum(v is not None for v in per_image))}
        for b in self.backbones:
            used = [0.0 if v is None else v for v in sims[b]] if self.failure_mode == "zero" else \
                [v for v in sims[b] if v is not None]
            metrics[b] = Metric(per[b]["score"], _stderr([100 * v for v in used]), per[b]["n_used"])
        failures = {k: sum(r["failed"] == k for r in records) for k in ("caption", "regenerate", "score")}
        details = {"backbone_set": self.set, "backbones": list(self.backbones), "failure_mode": self.failure_mode,
                   "per_backbone": per, "failures": failures, "n_failed": sum(failures.values()),
                   "n_images": len(records)}
        if self.mismatched:
            control = scoring.backbone_score([r.get("mismatched") for r in records], self.failure_mode)
            metrics["mismatched_overall"] = Metric(control["score"], None, control["n_used"])
            details["mismatched_control"] = ("each reconstruction compared with a different reference image (cyclic "
                                             "shift): the score of a round trip that ignores its image")
            if overall is not None and control["score"]:
                details["overall_to_mismatched"] = overall / control["score"]
        metrics["details"] = details
        return metrics

    def _image_mean(self, rec) -> float | None:
        vals = [rec["similarities"][b] for b in self.backbones]
        if self.failure_mode == "zero":
            vals = [0.0 if v is None else v for v in vals]
        else:
            vals = [v for v in vals if v is not None]
        return 100 * sum(vals) / len(vals) if vals else None

    def settings(self):
        return {"backbone_set": self.set, "backbones": {b: BACKBONES[b][0] for b in self.backbones},
                "similarity": "cosine of embeddings; DreamSim 1 - distance; world: scene similarity",
                "scale": "0-100", "caption_prompt": scoring.CAPTION_PROMPT, "caption_decoding": CAPTION_PARAMS,
                "caption_seed": "derived per request from the run seed", "images_per_caption": 1,
                "image_size": self.size or "model default", "failure_mode": self.failure_mode,
                "failure_rule": "failed round trips score 0 and are counted" if self.failure_mode == "zero"
                else "failed round trips are left out (UAE Score_i2i.py)",
                "mismatched_control": self.mismatched,
                **({"reconstructions": "read from an image folder (score --images); no captions"}
                   if self.from_folder else {})}

    export_layout = "unified_bench"

    @classmethod
    def export_images(cls, samples, writer):
        """Reconstructions as <out>/{reference stem}.png, paired with the references by stem as UAE's
        Score_i2i.py pairs them."""
        for line in samples:
            entries = (line.get("requests") or {}).get("regenerate") or []
            name = Path(str((line.get("record") or {}).get("name", line["doc_id"]))).stem
            writer.image(first_image(entries[0]) if entries else None, f"{name}.png")


class UnifiedBenchUAE(UnifiedBench):
    """UnifiedBench Protocol-1 with the UAE release's backbones (CLIP, LongCLIP, DINOv2, DINOv3)."""

    name = "unified_bench_uae"
    description = "UnifiedBench Protocol-1 with UAE's backbones (CLIP, LongCLIP, DINOv2, DINOv3)"
    backbone_set = "uae"


def image_docs(folder: Path) -> list[dict]:
    """One document per image file of `folder` (or its Image/ sub-folder), ordered by numeric stem then name."""
    if not folder.is_dir():
        raise DataError(f"--data {folder}: not a folder of reference images")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not files and (folder / "Image").is_dir():
        return image_docs(folder / "Image")
    if not files:
        raise DataError(f"--data {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    files.sort(key=lambda p: (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name))
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise DataError(f"--data {folder}: two images share the name {dup!r} (ids are file stems)")
    return [{"doc_id": p.stem, "name": p.name, "image": Image(path=p)} for p in files]


def _reconstruction(out):
    gens = out.get("regenerate") or []
    if not gens or not gens[0].ok or not gens[0].images:
        return None
    return gens[0].images[0]


def _stderr(values: list[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)
