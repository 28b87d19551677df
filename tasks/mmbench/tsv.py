"""MMBench's own TSV files (MMBench_DEV_EN.tsv, as VLMEvalKit and the MMBench server use them), with or without
their image column.

VLMEvalKit reads them with pandas' `read_csv(sep="\t")`, so an empty cell, and a cell holding one of pandas' default
missing-value words ("None", "NA", "N/A", "null", ...), is NaN: a missing option or hint, dropped from the prompt and
the choices. The `image` column holds the image as base64 text; a cell of at most 64 characters instead names the
`index` of the row that holds the image (VLMEvalKit's ImageBaseDataset resolves it the same way), which is how
circular passes share one picture.
"""
from __future__ import annotations

import base64
from pathlib import Path

from harness.data import load_rows
from harness.errors import DataError
from harness.types import Image

REFERENCE_MAX_LEN = 64
# pandas.read_csv's default na_values (exact, case-sensitive matches of the whole cell)
PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def read_tsv(path: Path) -> list[dict]:
    """The TSV's rows: cells pandas reads as NaN None, the image column (when there is one) as lazily decoded
    Images, one Image per picture however many rows share it."""
    rows = [{k: (None if v in PANDAS_NA else v) for k, v in row.items()} for row in load_rows(path)]
    held = {str(r.get("index")).strip(): _image(r["image"]) for r in rows
            if r.get("image") is not None and len(r["image"]) > REFERENCE_MAX_LEN}
    for n, row in enumerate(rows, 1):
        text = row.get("image")
        if text is None:
            continue
        key = str(row.get("index")).strip() if len(text) > REFERENCE_MAX_LEN else text.strip()
        if key not in held:
            raise DataError(f"{path}: row {n}, column 'image': {text!r} is neither base64 image data nor the "
                            "index of a row that holds the image")
        row["image"] = held[key]
    return rows


def _image(text: str) -> Image:
    # decoded only when a runner needs the pixels (a full TSV holds thousands of them)
    return Image(loader=lambda: base64.b64decode(text))
