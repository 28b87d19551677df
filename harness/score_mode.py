"""`harness score`: a task's own scoring of outputs made elsewhere, with no model.

The model's outputs come from one of two places:
* `--predictions FILE`: text answers, one {"doc_id", "prediction"} per line, matched on each request's ref (or
  doc id) by PredictionsModel (harness/replay.py);
* `--images DIR`: generated images in the benchmark's own folder layout. The task knows its layout: a task that can
  score images implements `read_image_folder(folder) -> {ref of one of its generate requests: image file}`
  (raising DataError on a folder that is not in the layout), and ImageFolderModel answers each generate request
  with its file. The model is recorded as the folder and the sha256 of the files it supplied.

Tasks are told that their answers are stored ones (`task.score_only`), so they accept annotation files without
images. The scorers' and judges' answers go through the response cache of a results store (the one `run` keeps;
keys are content keys, so either command reuses the other's answers) and are committed batch by batch: an
interrupted score, e.g. a WISE judge behind a paid API, resumes where it stopped. The stored outputs themselves are
never cached (the user's files are their own record). Every model request carries its prediction id in its parameters: requests that look identical (the same
text and the same image) then have different content keys, so the executor's de-duplication never hands one id's
prediction to another.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from harness.errors import DataError, HarnessError
from harness.results import TaskResult
from harness.runner import UnifiedModel
from harness.task import Stage, Task
from harness.types import MODEL, Image, Request, Response

#: the request parameter that keeps look-alike requests apart in score mode
PREDICTION_ID = "prediction_id"


class ImageFolderModel(UnifiedModel):
    """Answers `generate` requests with image files a task found in a folder, matched on request.ref."""

    name = "images"
    progress_label = "image folder"

    def __init__(self, folder: Path, files: dict[str, Path]):
        self.folder, self.files = folder, dict(files)
        digest = hashlib.sha256()
        for ref in sorted(self.files):     # which file answers which request, and the files' bytes
            digest.update(f"{ref}\0{self.files[ref].relative_to(folder).as_posix()}\0".encode())
            digest.update(Image(path=self.files[ref]).sha256.encode())
        self.sha256 = digest.hexdigest()
        self.spec = f"images:{folder}"

    def fingerprint(self) -> str:
        return f"images:{self.sha256}"

    def describe(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint(), "folder": str(self.folder),
                "sha256": self.sha256, "n_images": len(self.files)}

    def generate(self, requests: list[Request]) -> list[Response]:
        out = []
        for req in requests:
            path = self.files.get(req.ref)
            out.append(Response(images=(Image(path=path),)) if path is not None else
                       Response.failure(f"no image for {req.ref!r} in {self.folder}"))
        return out

    def understand(self, requests: list[Request]) -> list[Response]:
        raise HarnessError("`score --images` supplies images only; this task also needs the model's text answers")


def model_for(task: Task, predictions: str | None, images: str | None) -> UnifiedModel:
    """The stored outputs as a model: a predictions file or an image folder (exactly one of them)."""
    if (predictions is None) == (images is None):
        raise HarnessError("score needs --predictions FILE (text answers) or --images DIR (generated images), "
                           "not both")
    if images is not None:
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise DataError(f"--images {images}: no such folder")
        reader = getattr(task, "read_image_folder", None)
        if reader is None:
            raise HarnessError(f"--images: task {task.name} does not score image folders (the tasks that do are "
                               "geneval, wise and unified_bench); give --predictions FILE")
        files = reader(folder)
        if not files:
            raise DataError(f"--images {images}: no image of the {task.name} layout matches a document of the data")
        return ImageFolderModel(folder, files)
    from harness.replay import PredictionsModel

    model = PredictionsModel.from_file(predictions)
    known = set()
    build = task.stages()[0].build
    for doc in task.docs():
        for req in build(doc, {}):
            known.add(req.ref if req.ref is not None else task.doc_id(doc))
    unknown = [d for d in model.predictions if d not in known]
    if unknown:
        raise HarnessError(f"--predictions {predictions}: unknown doc_id {unknown[0]!r} "
                           f"({len(unknown)} unknown in all); ids must match the dataset given with --data")
    return model


def keep_ids_apart(task: Task) -> None:
    """Give every model request of the task its prediction id as a parameter (see the module docstring)."""
    stages = task.stages

    def wrap(stage: Stage) -> Stage:
        def build(doc, out):
            reqs = stage.build(doc, out) or []
            return [r.replace(params={**r.params, PREDICTION_ID: r.ref if r.ref is not None else task.doc_id(doc)})
                    if r.target == MODEL else r for r in reqs]
        return Stage(stage.name, build, stage.uses)

    task.stages = lambda: [wrap(s) for s in stages()]


class ScorerAnswers:
    """A response cache seen through score mode: scorers' and judges' answers are read and written, the stored
    outputs (target model) are not written."""

    def __init__(self, inner):
        self.inner = inner

    def get_many(self, keys):
        return self.inner.get_many(keys)

    def put_many(self, items):
        self.inner.put_many([item for item in items if item[1] != MODEL])

    def count(self) -> int:
        return self.inner.count()

    def close(self) -> None:
        self.inner.close()


def score(task: Task, model: UnifiedModel, scorer_args: dict, max_failure_rate: float | None = None,
          results: Path | None = None, repair_cache: bool = False,
          progress: bool = False) -> tuple[TaskResult, dict]:
    """Run the task on the stored outputs: its results (as a run writes them) and its scorer requests' counts.
    With `results`, the scorers' answers are read from and written to that results store's response cache."""
    from harness.api import task_results, used_runners
    from harness.artifacts import ArtifactStore
    from harness.cache import NullCache, ResponseCache
    from harness.executor import Executor, RunnerPool
    from harness.scorers import make_scorer

    from harness.health import Health
    from harness.options import check_scorer_args

    check_scorer_args(scorer_args)
    keep_ids_apart(task)
    pool = RunnerPool(lambda: model, lambda name: make_scorer(name, scorer_args.get(name, {})))
    # the stored outputs may lack answers (counted as missing predictions); a scorer failing everything stops it
    health = Health(max_failure_rate, exempt=(MODEL,))
    cache = (ScorerAnswers(ResponseCache(Path(results) / "cache", repair=repair_cache))
             if results is not None and asks_scorers(task) else NullCache())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # a cached answer that holds images finds them where run keeps them
            store = Path(results) / "artifacts" if isinstance(cache, ScorerAnswers) else Path(tmp)
            [tr] = Executor(pool, cache, ArtifactStore(store), progress=progress, health=health).run([task])
    finally:
        cache.close()
    runners = used_runners(tr, pool.used())
    res = task_results(task, tr.records, tr.stats.to_dict(), runners,
                       {"spec": model.spec, **model.describe()}, tr.stats.started, tr.stats.runner_seconds)
    answers = [(req, resp) for reqs, outs in zip(tr.requests, tr.outputs) for stage, pairs in reqs.items()
               for (req, _key), resp in zip(pairs, outs[stage])]
    # outputs the task asked for that the file or folder did not hold: each counts as a failed answer
    res.missing_predictions = sum(1 for req, resp in answers if req.target == MODEL and not resp.ok)
    scored = [resp for req, resp in answers if req.target != MODEL]
    return res, {"requests": len(scored), "cached": sum(bool(r.meta.get("cached")) for r in scored)}


def asks_scorers(task: Task) -> bool:
    """Whether the task may send requests to scorers: they score the model's outputs, so only a stage after the
    first can (a one-stage task such as POPE asks the model alone, and scoring it touches no cache)."""
    return any(stage.uses is None or any(t != MODEL for t in stage.uses) for stage in task.stages()[1:])

