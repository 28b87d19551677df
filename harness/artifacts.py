"""Content-addressed image files: artifacts/<aa>/<sha256>.png, written atomically (temp file + rename)."""
from __future__ import annotations

import io
import re
import zlib
from pathlib import Path

from harness.errors import DataError
from harness.store import write_bytes
from harness.types import Image


SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        # references are read back from samples.jsonl and the cache: an edited one must not name a file elsewhere
        if not isinstance(sha, str) or not SHA256.fullmatch(sha):
            raise DataError(f"{self.root}: image reference {sha!r} is not a sha256 hex digest (a damaged or edited "
                            "samples.jsonl or cache entry); rerun the task to store its images again")
        return self.root / sha[:2] / f"{sha}.png"

    def put(self, image: Image) -> str:
        """Store an image under its hash (once) and return the hash. The hash is of the pixels, so the PNG's
        compression is free to be the fastest: zlib's run-length strategy at level 1 encodes a photo-like 384 px
        image in 3/4 of the time of plain level 1, and smaller (bench/engine.py), and a fast model writes images as
        fast as it makes them."""
        sha = image.sha256
        dest = self.path(sha)
        if not dest.exists():
            buf = io.BytesIO()
            image.pil().save(buf, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
            write_bytes(dest, buf.getvalue(), fsync=False)
        return sha

    def get(self, sha: str) -> Image:
        return Image(path=self.path(sha), sha256=sha)

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()
