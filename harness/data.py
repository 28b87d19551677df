"""Reading benchmark data: local files in a benchmark's own schema, the Hugging Face hub, and content hashes.

Local data (`--data PATH`) may be a .jsonl/.json/.parquet/.csv/.tsv file, or a folder holding such files (read in
sorted order) or a `datasets.save_to_disk` folder. Image columns may hold paths (relative to the file, and inside its
folder), encoded bytes, or {"bytes", "path"} dicts as Hugging Face stores them; they become lazily loaded `Image`s.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from harness.errors import DataError
from harness.store import cache_root
from harness.types import Image, canonical_json

TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv")


def _check_inside(folder: Path, image: Path, where: str) -> None:
    """An image path written in a data file must name a file below that file's folder (lexically: a symlinked
    image folder inside it is fine), so a data file handed to us cannot make us read, hash and pass to a model or
    judge an image from anywhere else on the machine."""
    base = os.path.normpath(os.path.abspath(folder))
    target = os.path.normpath(os.path.abspath(image))
    if os.path.commonpath([base, target]) != base:
        raise DataError(f"{where}: image path {str(image)!r} is outside the data file's folder {base}; keep the "
                        "images in (or linked into) that folder and name them relative to it")


def image_cell(value: Any, base: Path, where: str, identity: str | None = None) -> Image:
    """A data file's image cell (a path relative to `base`, encoded bytes or a {bytes, path} record) as an Image;
    a written path must stay inside `base` and name an existing file. `where` names the file, row and column."""
    try:
        image = Image.coerce(value, base, identity=identity)
    except TypeError:
        raise DataError(f"{where}: not an image path, bytes or {{bytes, path}} record") from None
    if isinstance(value, (str, Path)):
        _check_inside(base, image.path, where)
    if image.path is not None and not image.path.exists():
        raise DataError(f"{where}: image file {image.path} not found")
    return image


def load_rows(path: str | Path, image_columns: Sequence[str] = (), required: Sequence[str] = (),
              what: str = "--data") -> list[dict]:
    """Rows of a local file or folder, with image columns as lazy Images and required columns checked."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} {path}: no such file or folder")
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            rows = _hf_disk_rows(path, image_columns)
            base = path
        else:
            files = sorted(p for p in path.iterdir() if p.suffix in TABLE_SUFFIXES)
            if not files:
                raise DataError(f"{what} {path}: folder holds no {'/'.join(TABLE_SUFFIXES)} files")
            rows = []
            for f in files:
                rows.extend(load_rows(f, image_columns, required, what))
            return rows
    else:
        rows = _file_rows(path)
        base = path.parent
    source = _file_identity(path)
    for n, row in enumerate(rows, 1):
        for col in required:
            if col not in row:
                raise DataError(f"{path}: row {n} has no column {col!r} (columns: {', '.join(sorted(row))})")
        for col in image_columns:
            value = row.get(col)
            if value is None or isinstance(value, Image):
                continue
            row[col] = image_cell(value, base, f"{path}: row {n}, column {col!r}",
                                  identity=f"{source}:{n}:{col}" if source else None)
    return rows


def _file_identity(path: Path) -> str | None:
    """Where a table file's embedded image bytes come from, for remembering their hashes (harness.hashmemo)."""
    import os

    if not path.is_file():
        return None
    st = path.stat()
    return f"table:{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def _file_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise DataError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        elif suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
            rows = data if isinstance(data, list) else _json_container_rows(path, data)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        elif suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r} (use {', '.join(TABLE_SUFFIXES)})")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {n} is a {type(row).__name__}, expected an object with named columns")
    return rows


def _json_container_rows(path: Path, data) -> list[dict]:
    """A JSON object holding the rows under one list-valued key (e.g. {"questions": [...]}), or a column dict."""
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            return lists[0]
        if data and all(isinstance(v, list) for v in data.values()):
            n = {len(v) for v in data.values()}
            if len(n) == 1:
                keys = list(data)
                return [dict(zip(keys, vals)) for vals in zip(*data.values())]
    raise DataError(f"{path}: expected a list of rows, or an object holding one list of rows")


def _hf_disk_rows(path: Path, image_columns: Sequence[str]) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # the datasets library raises many types for unreadable folders
        raise DataError(f"--data {path}: not a readable datasets folder ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise DataError(f"--data {path}: holds splits {', '.join(ds)}; point --data at one split's folder")
        ds = next(iter(ds.values()))
    return dataset_rows(ds, image_columns)


def dataset_rows(ds, image_columns: Sequence[str] = ()) -> list[dict]:
    """Rows of a `datasets.Dataset` with image columns as lazy Images read from the memory-mapped table.

    Images are not decoded (or even copied) until a runner needs them, so 200k-row datasets fit in memory.
    """
    import datasets

    cols = [c for c in image_columns if c in ds.column_names]
    for c in cols:
        ds = ds.cast_column(c, datasets.Image(decode=False))
    plain = ds.remove_columns(cols) if cols else ds
    rows = plain.to_list()
    # the datasets fingerprint changes with the data, so (fingerprint, column, row) names the bytes of a cell
    fingerprint = getattr(ds, "_fingerprint", None)
    for c in cols:
        column = ds.select_columns([c])
        for i, row in enumerate(rows):
            row[c] = _lazy_cell(column, i, c, f"dataset:{fingerprint}:{c}:{i}" if fingerprint else None)
    return rows


def _lazy_cell(column, i: int, name: str, identity: str | None) -> Image | None:
    cell = column[i][name]
    if cell is None:
        return None
    if cell.get("bytes") is None and cell.get("path"):
        return Image(path=cell["path"])
    return Image(loader=lambda: column[i][name]["bytes"], identity=identity)


def load_hub(repo_id: str, config: str | None, split: str, revision: str | None = None,
             image_columns: Sequence[str] = ()) -> tuple[list[dict], dict]:
    """Rows of a hub dataset (from the local Hugging Face cache when offline) and the snapshot they were read from:
    {"commit": the hub commit read (None when nothing says), "requested": `revision`, "fingerprint": datasets'}."""
    from harness.hub import dataset_commit, online

    is_online = online()        # offline or unreachable: datasets reads only its cache, with no retries
    import datasets

    try:
        ds = datasets.load_dataset(repo_id, config, split=split, revision=revision)
    except Exception as e:  # offline, missing, gated: datasets raises a zoo of types; our line says what to do
        raise hub_dataset_error(repo_id, config, split, e, is_online) from None
    snapshot = {"commit": dataset_commit(ds, repo_id), "requested": revision,
                "fingerprint": getattr(ds, "_fingerprint", None)}
    return dataset_rows(ds, image_columns), snapshot


def hub_dataset_error(repo_id: str, config: str | None, split: str, cause: BaseException,
                      was_online: bool) -> DataError:
    """The one-line error for a hub dataset that could not be read, with the command that fetches it."""
    from harness.hub import offline_reason

    what = f"dataset {repo_id}" + (f" (config {config})" if config else "") + f", split {split},"
    why = (f"could not be loaded ({type(cause).__name__}: {str(cause).strip().splitlines()[0][:160]})"
           if was_online and str(cause).strip() else
           f"is not in the local Hugging Face cache and {offline_reason()}")
    return DataError(f"{what} {why}; where the hub is reachable run `hf download --repo-type dataset {repo_id}` "
                     "and copy the Hugging Face cache here, or point --data at a local copy in the same schema")


def content_sha256(rows: Iterable[dict]) -> str:
    """Hash of the rows' content, images by their hashes: identical data gives the identical hash."""
    from harness.pipeline import hash_images

    rows = list(rows)
    hash_images(v for row in rows for v in row.values() if isinstance(v, Image))
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical_json(row).encode())
        h.update(b"\n")
    return h.hexdigest()


# --- one resolver for every task: the hub, a local path, or the embedded world ---------------------------------

def world_rows(benchmark: str, build: Callable[..., list[dict]], image_columns: Sequence[str] = (),
               **options) -> tuple[list[dict], "DatasetInfo"]:
    """A world dataset in the benchmark's schema: `build(**options)` (the benchmark's own builder) run once, the
    rows stored as parquet, read like any local file.

    Reading the stored file through `load_rows` means `--data shapes` exercises the same loader as `--data PATH`.
    """
    from harness.task import DatasetInfo
    from harness.world import WORLD_VERSION

    tag = hashlib.sha256(canonical_json(options).encode()).hexdigest()[:10]
    path = cache_root() / "world" / WORLD_VERSION / f"{benchmark}-{tag}.parquet"
    if not path.exists():
        rows = build(**options)
        write_parquet(path, rows, image_columns)
    rows = load_rows(path, image_columns=image_columns, what="--data shapes")
    info = DatasetInfo("shapes", benchmark, revision=WORLD_VERSION, sha256=content_sha256(rows),
                       extra={"options": options} if options else {})
    return rows, info


def write_parquet(path: Path, rows: list[dict], image_columns: Sequence[str] = ()) -> None:
    """Rows to parquet with image columns as Hugging Face {"bytes", "path"} records; written atomically."""
    import io
    import os
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    def encode(value):
        if value is None:
            return None
        pil = value.pil() if isinstance(value, Image) else value
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    table_rows = [{k: (encode(v) if k in image_columns else v) for k, v in row.items()} for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(pa.Table.from_pylist(table_rows), tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_rows(data: str | None, *, hub: dict | None, world: tuple[str, Callable] | None,
                 image_columns: Sequence[str] = (), required: Sequence[str] = (),
                 world_options: dict | None = None) -> tuple[list[dict], "DatasetInfo"]:
    """Rows and provenance for `--data`: None -> the task's hub dataset, "hub:ORG/NAME[@REV]" -> another hub copy
    in the same schema, "shapes" -> the world, else a local path.

    `hub` = {"repo": id, "config": name or None, "split": name, "revision": commit or None}; `world` = (dataset
    name, the benchmark's world builder).
    """
    from harness.task import DatasetInfo, data_kind

    kind = data_kind(data)
    if data is not None and data.startswith("hub:"):
        repo, _, revision = data[len("hub:"):].partition("@")
        if "/" not in repo:
            raise DataError(f"--data {data}: expected hub:ORG/NAME or hub:ORG/NAME@REVISION")
        hub = {**(hub or {"split": "test"}), "repo": repo, "revision": revision or None}
    if kind == "shapes":
        if world is None:
            raise DataError("this task has no embedded-world dataset; omit --data shapes")
        return world_rows(*world, image_columns, **(world_options or {}))
    if kind == "path":
        rows = load_rows(data, image_columns=image_columns, required=required)
        return rows, DatasetInfo("path", str(data), sha256=content_sha256(rows))
    if hub is None:
        raise DataError("this task has no default dataset; pass --data PATH")
    rows, snapshot = load_hub(hub["repo"], hub.get("config"), hub["split"], hub.get("revision"), image_columns)
    for n, row in enumerate(rows, 1):
        missing = [c for c in required if c not in row]
        if missing:
            raise DataError(f"dataset {hub['repo']}: row {n} has no column {missing[0]!r}")
    return rows, DatasetInfo("hub", hub["repo"], split=hub["split"], revision=snapshot["commit"],
                             sha256=content_sha256(rows), extra=_snapshot_extra(hub, snapshot))


def _snapshot_extra(hub: dict, snapshot: dict) -> dict:
    """What results record beside the commit read: the config, the revision asked for, and any disagreement."""
    import sys

    from harness.hub import COMMIT

    extra = {"config": hub["config"]} if hub.get("config") else {}
    commit, requested = snapshot["commit"], snapshot["requested"]
    if requested:
        extra["requested_revision"] = requested
    if snapshot.get("fingerprint"):
        extra["datasets_fingerprint"] = snapshot["fingerprint"]
    if commit is None:
        extra["snapshot"] = "unresolved: the local datasets cache does not name the hub commit these rows came from"
    elif requested and COMMIT.match(requested) and requested != commit:
        # offline, `datasets` reads the newest cached snapshot whatever was asked for: say which one it was
        extra["snapshot"] = f"read commit {commit}, not the requested {requested} (the one in the local cache)"
        print(f"warning: dataset {hub['repo']}: the local cache holds commit {commit}, not the pinned {requested}; "
              "results record the commit read", file=sys.stderr)
    return extra
