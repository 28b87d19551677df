"""Runners that answer from stored outputs instead of a model: `score` (a predictions file) and `rescore`."""
from __future__ import annotations

import json
from pathlib import Path

from harness.errors import HarnessError
from harness.runner import UnifiedModel
from harness.store import read_samples
from harness.types import MODEL, Request, Response


class PredictionsModel(UnifiedModel):
    """Answers `understand` requests from {"doc_id", "prediction"} lines, matched on request.ref or doc_id."""

    name = "predictions"
    progress_label = "stored predictions"

    def __init__(self, predictions: dict[str, str], source: str):
        self.predictions = predictions
        self.source = source
        self.spec = f"predictions:{source}"

    @classmethod
    def from_file(cls, path: str | Path) -> "PredictionsModel":
        path = Path(path)
        if not path.exists():
            raise HarnessError(f"--predictions {path}: no such file")
        preds: dict[str, str] = {}
        lines: dict[str, int] = {}
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise HarnessError(f"--predictions {path}: line {n} is not valid JSON ({e.msg})") from None
                if not isinstance(row, dict) or "doc_id" not in row or "prediction" not in row:
                    raise HarnessError(f"--predictions {path}: line {n} needs the fields 'doc_id' and 'prediction'")
                if not isinstance(row["prediction"], str):
                    raise HarnessError(f"--predictions {path}: line {n}: 'prediction' must be a string")
                doc_id = str(row["doc_id"])
                if doc_id in lines:     # which of the two answers is the model's? never silently the last
                    raise HarnessError(f"--predictions {path}: lines {lines[doc_id]} and {n} both give doc_id "
                                       f"{doc_id!r}; keep one prediction per document")
                preds[doc_id], lines[doc_id] = row["prediction"], n
        if not preds:
            raise HarnessError(f"--predictions {path}: the file holds no predictions; give one "
                               '{"doc_id": ..., "prediction": "..."} per line')
        return cls(preds, str(path))

    def fingerprint(self) -> str:
        return f"predictions:{self.source}"

    def understand(self, requests: list[Request]) -> list[Response]:
        out = []
        for req in requests:
            ref = req.ref if req.ref is not None else req.doc_id
            if ref in self.predictions:
                out.append(Response(text=self.predictions[ref]))
            else:
                out.append(Response.failure(f"no prediction for doc_id {ref!r}"))
        return out

    def generate(self, requests: list[Request]) -> list[Response]:
        raise HarnessError("--predictions holds text answers; this task needs generated images: give --images DIR "
                           "(the benchmark's own folder layout), or evaluate it with `run`")


class ReplayModel(UnifiedModel):
    """Answers model requests from a run's samples.jsonl, by content key (the stored model fingerprint)."""

    name = "replay"
    progress_label = "stored outputs"

    def __init__(self, model_info: dict, samples_files: list[Path]):
        self.info = model_info
        self.spec = model_info.get("spec", "replay")
        self._fp = model_info["fingerprint"]
        self._answers: dict[str, dict] = {}
        for path in samples_files:
            for line in read_samples(path):
                for entries in line.get("requests", {}).values():
                    for e in entries:
                        if e.get("target") == MODEL and "error" not in e.get("response", {}):
                            self._answers[e["key"]] = e["response"]

    def fingerprint(self) -> str:
        return self._fp

    def has(self, key: str) -> bool:
        return key in self._answers

    def describe(self) -> dict:
        return dict(self.info)

    def _answer(self, requests: list[Request]) -> list[Response]:
        out = []
        for req in requests:
            payload = self._answers.get(req.key(self._fp))
            if payload is None:
                out.append(Response.failure("no stored model output for this request (rescore replays the "
                                            "stored outputs; prompts or data changed since the run?)"))
            else:
                out.append(Response.from_payload(payload, self._image))
        return out

    def _image(self, sha: str):
        if self.artifacts is None:
            raise HarnessError("stored images are not available")
        return self.artifacts.get(sha)

    artifacts = None
    understand = _answer
    generate = _answer
