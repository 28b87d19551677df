"""What the executor talks to: runners (the model under evaluation and the scorers).

A runner answers lists of requests of one kind with a method named after the kind (`understand`, `generate`,
`embed`, `detect`, `judge`, ...). Constructing a runner must be cheap: weights load on first use, so a rerun whose
answers are all cached never loads a model. `fingerprint()` must change whenever outputs could change, and must be
computable without loading weights.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator, Sequence

from harness.errors import HarnessError
from harness.types import Request, Response, canonical_json


class Runner:
    """Base class for models and scorers."""

    name: str = "runner"
    #: request kinds this runner answers; each is a method taking list[Request] -> list[Response]
    kinds: tuple[str, ...] = ()
    #: preferred batch size; None means the run's --batch-size
    batch_size: int | None = None
    #: what progress bars call this runner; None means its target (model, scorer:clip, ...)
    progress_label: str | None = None

    def fingerprint(self) -> str:
        raise NotImplementedError

    def run(self, kind: str, requests: Sequence[Request]) -> list[Response]:
        if kind not in self.kinds:
            raise ValueError(f"{self.name} cannot answer {kind!r} requests (it answers {', '.join(self.kinds)})")
        return getattr(self, kind)(list(requests))

    def unload(self) -> None:
        """Free weights; the next request loads them again."""

    def describe(self) -> dict:
        """Identity recorded in results (no secrets)."""
        return {"name": self.name, "fingerprint": self.fingerprint()}


class UnifiedModel(Runner):
    """A unified multimodal model: `understand` (images + text -> text) and `generate` (text -> image).

    Each `generate` request asks for exactly one image with its own seed (`request.seed`); tasks that want n images
    per prompt send n requests with sample = 0..n-1, so every image is cached and resumed on its own.
    """

    kinds = ("understand", "generate")

    def capability_hint(self, kinds: tuple[str, ...]) -> str:
        """What to run instead when a task needs `kinds` this model lacks (ends the one-line refusal); a model
        with only some of the kinds (`kinds` narrowed per instance) says which model or option adds them."""
        return ""

    def understand(self, requests: list[Request]) -> list[Response]:
        raise NotImplementedError

    def generate(self, requests: list[Request]) -> list[Response]:
        raise NotImplementedError


class Scorer(Runner):
    """A scoring model (CLIP, a detector, a judge...) shared by every task of a run."""


#: how allocators word running out: CUDA and MPS ("... out of memory"), PyTorch's CPU allocator, and cuBLAS or
#: cuDNN failing to allocate their workspace on a full GPU
_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an error is an allocation failure (torch.OutOfMemoryError on CUDA, MPS's and the CPU allocator's
    RuntimeErrors, Python's MemoryError): a smaller batch may fit where this one did not."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and any(s in str(error) for s in _OUT_OF_MEMORY)


@contextmanager
def placing_weights(what: str, device) -> Iterator[None]:
    """Weights that run out of memory on their way to the device stop the run in one line: every request would
    load them again and fail alike, and the smaller batches the executor tries on memory errors cannot help."""
    try:
        yield
        return
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        error = " ".join(str(e).split())[:300]
    free_accelerator_memory()
    raise HarnessError(f"{what} does not fit in the memory of {device} ({error}); free that device, or load it "
                       "in a smaller dtype (the dtype argument) or on another device")


def free_accelerator_memory() -> None:
    """After dropping a model's references: collect, and hand cached GPU memory back to the driver."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def fingerprint_of(*parts) -> str:
    """Short stable hash of JSON-able parts, for building fingerprints."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]
