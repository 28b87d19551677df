"""Shared machinery of the model-backed scorers: constructor arguments, lazy loading, device and dtype,
sub-batching, fingerprints and the missing-weights error.

A subclass sets `name`, `kinds`, `default_weights` and `preprocessing` (a one-line description that goes into the
fingerprint, so changing the preprocessing invalidates cached scores), and implements `_load()` and the kind methods.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from harness.runner import Scorer, fingerprint_of, free_accelerator_memory, placing_weights
from harness.scorers import weights as W
from harness.types import Request, Response

_DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def features(out) -> Any:
    """transformers 5 returns a model output from get_*_features (projected features in pooler_output);
    older versions returned the tensor itself."""
    return out.pooler_output if hasattr(out, "pooler_output") else out


class ModelScorer(Scorer):
    name = "model-scorer"
    version = "1"
    default_weights = ""
    preprocessing = ""
    #: dtype used on a GPU when the user gives none (fp32 everywhere keeps reference numbers)
    gpu_dtype = "float32"

    def __init__(self, weights: str | None = None, revision: str | None = None, device: str = "auto",
                 dtype: str | None = None, batch_size: int = 16):
        self.weights = str(weights or self.default_weights)
        self.revision = revision
        self.device_request = device or "auto"
        if dtype is not None and str(dtype) not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(sorted(_DTYPES))}, got {dtype!r}")
        self.dtype_request = _DTYPES.get(str(dtype)) if dtype is not None else None
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = int(batch_size)
        self._fp: str | None = None
        self._commit: str | None = None
        self._hub_reachable = True
        self._loaded = False
        self.device = None
        self.dtype = None

    # --- identity ---------------------------------------------------------------------------------------------
    def settings(self) -> dict:
        """Constructor choices that change outputs (beyond weights and preprocessing); subclasses extend it."""
        return {"dtype": self.dtype_request or f"auto(cpu=float32,cuda={self.gpu_dtype})"}

    def weights_identity(self) -> str:
        if W.is_local(self.weights):
            return W.local_identity(self.weights) if _exists(self.weights) else f"missing:{self.weights}"
        self._commit, self._hub_reachable = W.resolve_commit(self.weights, self.revision)
        return f"{self.weights}@{self._commit or self.revision or 'unresolved'}"

    def fingerprint(self) -> str:
        if self._fp is None:
            ident = self.weights_identity()
            detail = fingerprint_of(self.preprocessing, self.settings())
            self._fp = f"{self.name}/v{self.version}/{ident}/{detail}"
        return self._fp

    def describe(self) -> dict:
        out = {"name": self.name, "version": self.version, "fingerprint": self.fingerprint(),
               "weights": self.weights, "preprocessing": self.preprocessing, **self.settings()}
        if self._commit:
            out["snapshot"] = self._commit
        if self._loaded:
            out.update(device=str(self.device), loaded_dtype=str(self.dtype).replace("torch.", ""))
        return out

    # --- loading ----------------------------------------------------------------------------------------------
    def _place(self) -> None:
        """Resolve device ("auto": cuda if available) and dtype (fp32 on CPU whatever was asked)."""
        import torch

        dev = self.device_request
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        name = self.dtype_request or (self.gpu_dtype if self.device.type == "cuda" else "float32")
        if self.device.type == "cpu":
            name = "float32"  # half precision on CPU is slow and not what any reference used
        self.dtype = getattr(torch, name)

    def local_source(self) -> Path | None:
        """The folder (or file) to load without touching the network, or None when the hub client should fetch:
        a local path, or the cached snapshot when offline (loading a hub id offline still makes transformers
        probe the hub for optional files, retrying for a minute)."""
        if W.is_local(self.weights):
            path = Path(self.weights).expanduser()
            if not path.exists():
                raise W.missing_weights(self.name, self.weights)
            return path
        self.fingerprint()  # resolves the commit we load
        if W.offline() or not self._hub_reachable:
            snap = W.snapshot_dir(self.weights, self._commit)
            if snap is None:
                raise W.missing_weights(self.name, self.weights)
            return snap
        return None

    def from_pretrained(self, cls, **kwargs):
        """cls.from_pretrained on our weights (the fingerprinted commit), with the one-line WeightsError when the
        files are not there."""
        local = self.local_source()
        try:
            if local is not None:
                return cls.from_pretrained(str(local), **kwargs)
            return cls.from_pretrained(self.weights, revision=self._commit or self.revision, **kwargs)
        except OSError as e:  # transformers and huggingface_hub report missing files and offline misses as OSError
            raise W.missing_weights(self.name, self.weights, e) from None

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self._place()
            with placing_weights(f"scorer {self.name} ({self.weights})", self.device):
                self._load()
            self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    def unload(self) -> None:
        for attr in [a for a in vars(self) if a.startswith("_m_")]:
            setattr(self, attr, None)
        self._loaded = False
        free_accelerator_memory()

    # --- helpers for the kind methods -------------------------------------------------------------------------
    def batched(self, items: Sequence, fn: Callable[[Sequence], list]) -> list:
        """fn over sub-batches of `batch_size`, results concatenated in order."""
        out: list = []
        for chunk in chunks(list(items), self.batch_size):
            out.extend(fn(chunk))
        return out


def one_image(req: Request) -> Response | None:
    """A failure Response unless the request carries exactly one image."""
    if len(req.images) != 1:
        return Response.failure(f"{req.kind} needs exactly one image, got {len(req.images)}")
    return None


def _exists(path: str) -> bool:
    return Path(path).expanduser().exists()


def vector_response(vec) -> Response:
    """{"embedding": [...]} as plain floats; a non-finite vector is a failure, not a number to average."""
    import numpy as np

    vec = np.asarray(vec, dtype=np.float32)
    if not np.isfinite(vec).all():
        return Response.failure("embedding has non-finite values")
    return Response(values={"embedding": [float(x) for x in vec]})


class ImageEmbedder(ModelScorer):
    """`embed`: one image -> {"embedding": [...]}; subclasses implement image_features(list[PIL]) -> [n, d]."""

    kinds = ("embed",)

    def image_features(self, images: list):
        raise NotImplementedError

    def embed(self, requests: list[Request]) -> list[Response]:
        self.ensure_loaded()
        out = [one_image(r) for r in requests]
        todo = [i for i, r in enumerate(out) if r is None]
        vecs = self.batched([requests[i].images[0].pil() for i in todo], self.image_rows)
        for i, vec in zip(todo, vecs):
            out[i] = vector_response(vec)
        return out

    def image_rows(self, images: Sequence) -> list:
        import torch

        with torch.inference_mode():
            return list(self.image_features(list(images)).float().cpu().numpy())
