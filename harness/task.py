"""The Task contract: documents, stages of typed requests, a per-document record, and metrics.

A task is a list of stages. Each stage turns one document (and the outputs of its earlier stages) into requests
for the model or a scorer; the executor pools the requests of one (target, kind) across every task of the run and
hands them to the runner in batches. `process` turns a document's outputs into a record (JSON-able, per-sample
scores and intermediate values) and `aggregate` turns the records into metrics. Scoring is therefore a pure
function of stored outputs: `rescore` re-runs it without the model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

from harness.errors import DataError, HarnessError
from harness.options import check_value
from harness.types import MODEL, Image, Request, Response

Outputs = dict[str, list[Response]]


@dataclass
class Stage:
    name: str
    build: Callable[[dict, Outputs], list[Request]]
    #: the runners this stage may send requests to (MODEL, scorer_target(name)); the executor releases a runner
    #: once no later stage of any running task uses it. None: not declared, so nothing is released early.
    uses: tuple[str, ...] | None = None


def scorer_target(name: str) -> str:
    """The request target of a scorer, for Stage.uses."""
    return f"scorer:{name}"


@dataclass
class DatasetInfo:
    """Where a task's documents came from; recorded in results so numbers say which data produced them."""

    source: str                      # "hub", "path", "shapes" or "inline"
    name: str                        # hub id, file path, or world dataset name
    split: str | None = None
    revision: str | None = None      # hub commit or world version
    sha256: str | None = None        # content hash of the documents
    n_total: int | None = None
    n_evaluated: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, [])}

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetInfo":
        names = {"source", "name", "split", "revision", "sha256", "n_total", "n_evaluated", "extra"}
        return cls(**{"source": d.get("source", "?"), "name": d.get("name", "?"),
                      **{k: v for k, v in d.items() if k in names - {"source", "name"} and v is not None}})


def understand(text: str, images=(), *, ref: str | None = None, sample: int = 0, **params) -> Request:
    """A request to the model: images + text -> text. `params` e.g. max_new_tokens, do_sample, temperature."""
    return Request(MODEL, "understand", text=text, images=tuple(Image.coerce(i) for i in images),
                   params=params, sample=sample, ref=ref)


def generate(text: str, *, ref: str | None = None, sample: int = 0, **params) -> Request:
    """A request to the model for exactly one image (sample k of the prompt gets its own derived seed)."""
    return Request(MODEL, "generate", text=text, params=params, sample=sample, ref=ref)


def score(scorer: str, kind: str, *, text: str | None = None, images=(), ref: str | None = None,
          **params) -> Request:
    """A request to a scorer, e.g. score("clip", "embed", images=[img])."""
    return Request(scorer_target(scorer), kind, text=text, images=tuple(Image.coerce(i) for i in images),
                   params=params, ref=ref)


class Task:
    """Base class for benchmarks. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    #: the model capabilities (request kinds, as in Runner.kinds) its stages ask the model for; a model lacking one
    #: cannot serve the task: refused when the task is named, skipped when a suite selected it
    #: (harness/capabilities.py). Undeclared, a task is taken to need both. A stage that sends the model a kind not
    #: declared here stops the run (the executor checks each model request).
    model_kinds: ClassVar[tuple[str, ...]] = ("understand", "generate")
    #: which `--data` forms the task accepts besides its default data: "hub" (its default is a hub dataset, and
    #: `hub:ORG/NAME[@REV]` reads another copy), "release" (its default is the benchmark's own published files, not
    #: a hub dataset, so `hub:` copies are refused), "path", "shapes"
    data_sources: ClassVar[tuple[str, ...]] = ("hub", "path", "shapes")
    profiles: ClassVar[tuple[str, ...]] = ("official",)
    headline: ClassVar[str] = "accuracy"
    #: metric scale for display: 100 means the metric is a fraction shown as a percentage
    display_scale: ClassVar[float] = 100.0
    #: task options accepted from `--task-args` (name -> one-line help)
    options_help: ClassVar[dict[str, str]] = {}
    #: each option's type, checked before any work (harness/options.py: "bool", "int", "number", "str", "size",
    #: a trailing "?" for null, or a tuple of allowed values); every option in options_help declares one
    option_types: ClassVar[dict[str, Any]] = {}
    #: how lmms-eval names and scores this benchmark (harness.integrations.equivalence.LmmsEquivalent), if it does
    lmms: ClassVar[Any] = None
    #: set by `score` (harness/score_mode.py): the model's answers are stored ones, so documents need no pixels
    #: and annotation files without image columns are accepted
    score_only: bool = False

    def __init__(self, data: str | None = None, profile: str | None = None, limit: int | None = None, **options):
        self.data = data
        self.profile = profile or self.profiles[0]
        if self.profile not in self.profiles:
            raise HarnessError(f"task {self.name}: unknown --profile {self.profile!r}; "
                               f"choose one of {', '.join(self.profiles)}")
        if data is not None and data_kind(data) not in self.data_sources:
            raise DataError(f"task {self.name} does not accept --data {data}; it reads "
                            + ", ".join(DATA_FORMS[s] for s in self.data_sources))
        unknown = sorted(set(options) - set(self.options_help))
        if unknown:
            known = ", ".join(sorted(self.options_help)) or "none"
            raise HarnessError(f"--task-args for {self.name}: unknown option {unknown[0]!r} (options: {known})")
        for option, value in options.items():
            if option in self.option_types:
                check_value(f"--task-args for {self.name}: option {option!r}", value, self.option_types[option])
        self.limit = limit
        self.options = options
        self._docs: list[dict] | None = None
        self._info: DatasetInfo | None = None

    # --- data -------------------------------------------------------------------------------------------------
    def load(self) -> tuple[list[dict], DatasetInfo]:
        """All documents of the selected data source and its provenance (before --limit)."""
        raise NotImplementedError

    def docs(self) -> list[dict]:
        if self._docs is None:
            docs, info = self.load()
            if not docs:     # a "complete" run over nothing would report metrics of nothing
                raise DataError(f"task {self.name}: {info.name} holds no documents; give --data a file or folder "
                                "with rows in the benchmark's schema")
            info.n_total = info.n_total or len(docs)
            if self.limit is not None:
                docs = docs[: self.limit]
            info.n_evaluated = len(docs)
            self._docs, self._info = docs, info
        return self._docs

    @property
    def dataset_info(self) -> DatasetInfo:
        self.docs()
        return self._info

    def doc_id(self, doc: dict) -> str:
        return str(doc["doc_id"])

    # --- stages and scoring -----------------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def process(self, doc: dict, outputs: Outputs) -> dict:
        raise NotImplementedError

    def aggregate(self, records: list[dict]) -> dict[str, Any]:
        """Metrics as {name: Metric | {"value", "stderr", "n"} | number}; also free-form extras under "details"."""
        raise NotImplementedError

    def extra_files(self, records: list[dict]) -> dict[str, str | bytes]:
        """Files to write beside results.json (e.g. a leaderboard-server submission): name -> content."""
        return {}

    def settings(self) -> dict:
        """What else moves the numbers (prompt template, generation parameters...): recorded in results."""
        return {}

    # --- export -----------------------------------------------------------------------------------------------
    #: the benchmark's own folder layout for generated images (`python -m harness export`); None: no images
    export_layout: ClassVar[str | None] = None

    @classmethod
    def export_images(cls, samples: list[dict], writer) -> None:
        """Write a finished run's images in `export_layout`: `samples` are the run's samples.jsonl lines; call
        writer.image(sha256 or None, relative path) per image and writer.text(relative path, content) for any
        metadata file the layout needs (harness.export.ExportWriter keeps every path inside the folder)."""
        raise NotImplementedError


DATA_FORMS = {"hub": "its hub dataset (omit --data) or another copy (--data hub:ORG/NAME[@REVISION])",
              "release": "the benchmark's released files (omit --data)",
              "path": "a local copy (--data PATH)", "shapes": "the embedded world (--data shapes)"}


def data_kind(data: str | None) -> str:
    if data is None or data.startswith("hub:"):
        return "hub"
    if data == "shapes" or data.startswith("shapes:"):
        return "shapes"
    return "path"
