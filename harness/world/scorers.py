"""The world's rule scorers as registered Scorers, standing in for the real detector, judge and backbones.

They answer the same request kinds with the same response structure as the real scorers, so a task's scoring path
is identical on `--data shapes` and on real data:

* ``world_detector`` (kind ``detect``): the scene parser as a GenEval detector. One image (+ optional param
  "min_score") -> {"detections": {class: [{"box", "score", "label", "mask": COCO RLE, "color", "size"}]},
  "unrecognised": n}, most confident first. Unlike the real detector each detection carries its colour, which
  replaces the CLIP colour classifier.
* ``world_judge`` (kind ``judge``): WISE's rule judge. One image + params {"Explanation" (required), "Prompt"}
  -> {"text": the answer in the legacy judge's format, "model": ...}, so the legacy parser scores it.
* ``world_scene`` (kind ``compare``): two images -> {"similarity": scene_similarity in [0, 1]}.

All are cheap and deterministic; the fingerprint is the scorer name and WORLD_VERSION, so cached answers change
exactly when the world does.
"""
from __future__ import annotations

from harness.runner import Scorer
from harness.masks import rle_encode
from harness.types import Request, Response

from . import WORLD_VERSION
from .judge import judge_text, scene_similarity, wise_judge
from .parse import parse
from .scene import SHAPES


class _WorldScorer(Scorer):
    version = "1"

    def fingerprint(self) -> str:
        return f"{self.name}/v{self.version}/world-{WORLD_VERSION}"

    def describe(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint(), "world_version": WORLD_VERSION,
                "model": f"{self.name}/world-{WORLD_VERSION}"}

    def _each(self, requests: list[Request], n_images: int, fn) -> list[Response]:
        """fn(request) per request; a wrong image count or an exception fails that request alone."""
        out = []
        for req in requests:
            if len(req.images) != n_images:
                out.append(Response.failure(f"{self.name}.{req.kind} needs {n_images} image(s), "
                                            f"got {len(req.images)}"))
                continue
            try:
                out.append(fn(req))
            except (ValueError, KeyError, TypeError) as e:
                out.append(Response.failure(f"{self.name}: {e}"))
        return out


class WorldDetector(_WorldScorer):
    name = "world_detector"
    kinds = ("detect",)

    def detect(self, requests: list[Request]) -> list[Response]:
        return self._each(requests, 1, self._detect_one)

    @staticmethod
    def _detect_one(req: Request) -> Response:
        min_score = float((req.params or {}).get("min_score", 0.0))     # as the real detector's param
        result = parse(req.images[0].pil())
        detections: dict[str, list[dict]] = {}
        for cls, dets in result.detections.items():
            kept = [{"box": [float(v) for v in d["box"]], "score": float(d["score"]),
                     "label": SHAPES.index(cls) if cls in SHAPES else -1,
                     "mask": rle_encode(d["mask"]), "color": d["color"], "size": d.get("size")}
                    for d in dets if d["score"] >= min_score]
            if kept:
                detections[cls] = kept
        return Response(values={"detections": detections, "unrecognised": len(result.unrecognised)})


class WorldJudge(_WorldScorer):
    name = "world_judge"
    kinds = ("judge",)

    def judge(self, requests: list[Request]) -> list[Response]:
        return self._each(requests, 1, self._judge_one)

    def _judge_one(self, req: Request) -> Response:
        explanation = (req.params or {}).get("Explanation")
        if not isinstance(explanation, str):
            raise ValueError("world_judge needs the row's Explanation in params['Explanation']")
        text = judge_text(wise_judge(req.images[0].pil(), explanation))
        return Response(text=text, values={"text": text, "model": f"{self.name}/world-{WORLD_VERSION}"})


class WorldScene(_WorldScorer):
    name = "world_scene"
    kinds = ("compare",)

    def compare(self, requests: list[Request]) -> list[Response]:
        return self._each(requests, 2, lambda r: Response(values={
            "similarity": float(scene_similarity(r.images[0].pil(), r.images[1].pil()))}))
