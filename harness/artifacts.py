"""Content-addressed image files: artifacts/<aa>/<sha256>.png, written atomically (temp file + rename)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.types import Image


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.png"

    def put(self, image: Image) -> str:
        """Store an image under its hash (once) and return the hash."""
        sha = image.sha256
        dest = self.path(sha)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    image.pil().save(f, format="PNG")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return sha

    def get(self, sha: str) -> Image:
        return Image(path=self.path(sha), sha256=sha)

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()
