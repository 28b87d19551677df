"""Core value types: lazily loaded content-hashed images, requests, responses.

A `Request` is everything a runner (the model or a scorer) needs to answer one question; its `key` is a content
hash that never depends on the process rank or the batch position, so cached answers are found again after a crash,
with any number of processes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image as PILImage


def pixel_hash(pil: PILImage.Image) -> str:
    """sha256 of the RGB pixels and size: the identity of an image that exists only as pixels (a generated one)."""
    rgb = pil if pil.mode == "RGB" else pil.convert("RGB")
    h = hashlib.sha256(b"RGB|%dx%d|" % rgb.size)
    h.update(rgb.tobytes())
    return h.hexdigest()


class Image:
    """An image identified by a content hash and decoded only when someone needs the pixels.

    Identity: images that come as encoded files (dataset rows, reference folders) are hashed by their bytes, which
    needs no decoding (hashing 200k VQAv2 rows by pixels would take many minutes); images that exist only as pixels
    (generated ones) are hashed by pixels and stored as PNG under that hash, and come back with the hash attached.
    """

    __slots__ = ("_pil", "_path", "_loader", "_sha", "_identity")

    def __init__(self, pil: PILImage.Image | None = None, path: str | Path | None = None,
                 loader: Callable[[], Any] | None = None, sha256: str | None = None, identity: str | None = None):
        if pil is None and path is None and loader is None:
            raise ValueError("Image needs pixels, a path or a loader")
        self._pil = pil
        self._path = Path(path) if path is not None else None
        self._loader = loader      # returns encoded bytes or a PIL image; called again after release()
        self._sha = sha256
        # where the encoded bytes live, stably enough that their hash can be remembered across runs
        # (harness.pipeline.hash_images): a dataset file, row and column; files use their path, size and mtime
        self._identity = identity

    @classmethod
    def coerce(cls, value: Any, base_dir: str | Path | None = None, identity: str | None = None) -> "Image":
        """From a PIL image, a path (relative to base_dir), encoded bytes, or a {"bytes", "path"} dict; `identity`
        names where encoded bytes came from (see __init__)."""
        if isinstance(value, Image):
            return value
        if isinstance(value, PILImage.Image):
            return cls(pil=value)
        if isinstance(value, dict) and ("bytes" in value or "path" in value):
            if value.get("bytes") is not None:
                return cls.coerce(value["bytes"], identity=identity)
            value = value["path"]
        if isinstance(value, (str, Path)):
            p = Path(value)
            if base_dir is not None and not p.is_absolute():
                p = Path(base_dir) / p
            return cls(path=p)
        if isinstance(value, (bytes, bytearray)):
            data = bytes(value)
            return cls(loader=lambda: data, identity=identity)
        raise TypeError(f"cannot make an image from {type(value).__name__}")

    @property
    def path(self) -> Path | None:
        return self._path

    def _source(self):
        """Encoded bytes, or pixels when the loader hands over a PIL image (None: only pixels in memory)."""
        if self._path is not None:
            return self._path.read_bytes()
        if self._loader is not None:
            got = self._loader()
            return bytes(got) if isinstance(got, (bytes, bytearray)) else got
        return None

    def pil(self) -> PILImage.Image:
        """The pixels as an RGB PIL image (decoded on first use and kept until release()). Safe while another
        thread decodes or releases the same image (the executor prefetches and stores on background threads)."""
        pil = self._pil
        if pil is None:
            pil = self._source()
            if isinstance(pil, bytes):
                with PILImage.open(io.BytesIO(pil)) as f:
                    f.load()
                    pil = f.copy()
        if pil.mode != "RGB":
            pil = pil.convert("RGB")
        self._pil = pil
        return pil

    @property
    def hashed(self) -> bool:
        return self._sha is not None

    @property
    def identity(self) -> str | None:
        """A stable name for this image's encoded bytes, or None (pixels only, or bytes of unknown origin)."""
        if self._identity is None and self._path is not None:
            try:
                st = self._path.stat()
            except OSError:
                return None
            return f"file:{os.path.realpath(self._path)}:{st.st_size}:{st.st_mtime_ns}"
        return self._identity

    def remember_hash(self, sha: str) -> None:
        """The content hash, known from an earlier hashing of the same bytes (harness.pipeline.hash_images)."""
        self._sha = sha

    @property
    def sha256(self) -> str:
        if self._sha is None:
            if self._path is None and self._loader is None:
                self._sha = pixel_hash(self._pil)
            else:
                data = self._source()
                self._sha = hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else pixel_hash(
                    data if data is not None else self._pil)
        return self._sha

    def release(self) -> None:
        """Drop decoded pixels when they can be read again, to bound memory on large datasets."""
        if self._path is not None or self._loader is not None:
            self._pil = None

    def __repr__(self) -> str:
        where = str(self._path) if self._path else "memory"
        return f"Image({where}, sha256={self._sha[:12] if self._sha else '?'})"


MODEL = "model"


@dataclass(frozen=True)
class Request:
    """One unit of work for a runner. `target` is "model" or "scorer:<name>"; `kind` names the runner method."""

    target: str
    kind: str
    text: str | None = None
    images: tuple[Image, ...] = ()
    params: dict = field(default_factory=dict)
    sample: int = 0
    ref: str | None = None
    task: str = ""
    doc_id: str = ""
    stage: str = ""
    seed: int | None = None

    def key(self, fingerprint: str) -> str:
        """Content key: runner fingerprint, kind, inputs, image hashes, params and seed; nothing positional."""
        body = {
            "fp": fingerprint, "target": self.target, "kind": self.kind, "text": self.text,
            "images": [im.sha256 for im in self.images], "params": self.params, "seed": self.seed,
        }
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()

    def replace(self, **changes) -> "Request":
        # dataclasses.replace re-runs the frozen __init__ field by field: a tenth of a finished rerun's time, since
        # the engine stamps every request of a run this way. Request has no __post_init__ to skip.
        unknown = changes.keys() - _REQUEST_FIELDS
        if unknown:
            raise TypeError(f"Request has no field {sorted(unknown)[0]!r}")
        new = object.__new__(Request)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def describe(self) -> dict:
        """What the request asked, for samples.jsonl: text and image hashes, never pixels."""
        out = {"target": self.target, "kind": self.kind}
        if self.text is not None:
            out["text"] = self.text
        if self.images:
            out["images"] = [im.sha256 for im in self.images]
        if self.params:
            out["params"] = self.params
        if self.ref is not None:
            out["ref"] = self.ref
        if self.seed is not None:
            out["seed"] = self.seed
        return out


_REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(Request))


@dataclass
class Response:
    """A runner's answer: text, images, or values (scores, embeddings, detections); `error` marks a failure."""

    text: str | None = None
    images: tuple[Image, ...] = ()
    values: dict | None = None
    error: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        # runners may hand back PIL images; the engine works with hashed Images
        if self.images:
            self.images = tuple(Image.coerce(im) for im in self.images)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, message: str) -> "Response":
        return cls(error=message)

    def payload(self) -> dict:
        """The cacheable part (no meta): images by hash."""
        out: dict = {}
        if self.text is not None:
            out["text"] = self.text
        if self.images:
            out["images"] = [im.sha256 for im in self.images]
        if self.values is not None:
            out["values"] = self.values
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_payload(cls, payload: dict, image_for: Callable[[str], Image]) -> "Response":
        return cls(text=payload.get("text"), images=tuple(image_for(s) for s in payload.get("images", ())),
                   values=payload.get("values"), error=payload.get("error"))


def canonical_json(obj: Any) -> str:
    return _CANONICAL(obj)


def _json_default(obj: Any):
    if isinstance(obj, Image):
        return obj.sha256
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def reusable_encode(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """encoder.encode with its C encoder built once: JSONEncoder.encode builds a new one on every call, a third of
    the cost of a small object, and a finished rerun encodes a few objects per request (its key, the dataset
    hash, its samples.jsonl line). The same text; a circular structure raises RecursionError instead of ValueError."""
    from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii

    if c_make_encoder is None or encoder.indent is not None:    # a Python without the _json accelerator
        return encoder.encode
    try:
        encode = c_make_encoder(None, encoder.default, encode_basestring_ascii if encoder.ensure_ascii else
                                encode_basestring, None, encoder.key_separator, encoder.item_separator,
                                encoder.sort_keys, encoder.skipkeys, encoder.allow_nan)
    except TypeError:            # a private constructor: a Python that changed it gets the standard path
        return encoder.encode
    return lambda obj: "".join(encode(obj, 0))


_CANONICAL = reusable_encode(json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                              default=_json_default))
