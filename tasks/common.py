"""Plumbing shared by the understanding tasks: picking the data source, naming bad rows, reading responses.

`--data` forms every understanding task accepts (resolved by harness.data.resolve_rows):
  (omitted)        the benchmark's default hub dataset (from the local Hugging Face cache when offline);
  hub:ORG/NAME[@REV]  another hub copy in the same schema, e.g. hub:lmms-lab-encoder/VQAv2 (lmms-eval moved its
                   datasets from lmms-lab/ to lmms-lab-encoder/ in 2026; the spec could not confirm byte identity,
                   so the repository actually read is what the results record);
  shapes           the embedded world's dataset in the benchmark's schema;
  PATH             a local file or folder in the benchmark's own schema.
"""
from __future__ import annotations

from typing import Any, Sequence

from harness.data import resolve_rows
from harness.errors import DataError
from harness.task import DatasetInfo, Task, data_kind
from harness.types import Response

GREEDY = {"do_sample": False}


# failure_mode of the tasks whose failed items score as wrong answers: kept (wrong) or left out
INCORRECT_OR_EXCLUDE = ("incorrect", "exclude")


def failure_mode(task: Task, modes: tuple[str, str]) -> str:
    """The task's failure_mode option: `modes` = (default, leave-out); profile exclude_failures makes the second
    the default. Refused when not one of them (tasks built in code skip the CLI's option check)."""
    mode = task.options.get("failure_mode", modes[1] if task.profile == "exclude_failures" else modes[0])
    if mode not in modes:
        raise DataError(f"{task.name}: failure_mode must be one of {', '.join(modes)}")
    return mode


def is_local_path(data: str | None) -> bool:
    return data_kind(data) == "path"


def load_source(task: Task, hub: dict, world: str, image_columns: Sequence[str] = (),
                required: Sequence[str] = ()) -> tuple[list[dict], DatasetInfo]:
    """Rows and provenance for the task's --data (the engine's resolver handles every form; `world` names the
    benchmark's world builder in tasks/world.py)."""
    from tasks.world import builder

    return resolve_rows(task.data, hub=hub, world=(world, builder(world)), image_columns=image_columns,
                        required=required)


def where(info: DatasetInfo) -> str:
    """How a data source is named in error messages."""
    if info.source == "hub":
        return f"dataset {info.name} (split {info.split})"
    if info.source == "shapes":
        return f"--data shapes (world dataset {info.name})"
    return str(info.name)


def bad_row(info: DatasetInfo | str, n: int, column: str, problem: str) -> DataError:
    source = info if isinstance(info, str) else where(info)
    return DataError(f"{source}: row {n}, column {column!r}: {problem}")


def as_int(value: Any, info: DatasetInfo | str, n: int, column: str) -> int:
    """An integer id stored as int or as a digit string (some hub revisions store ids as strings)."""
    if isinstance(value, bool):
        raise bad_row(info, n, column, f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise bad_row(info, n, column, f"expected an integer, got {value!r}")


def as_text(value: Any, info: DatasetInfo | str, n: int, column: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_row(info, n, column, f"expected non-empty text, got {value!r}")
    return value


def check_unique(ids: Sequence[str], info: DatasetInfo | str, what: str) -> None:
    seen: dict[str, int] = {}
    for n, i in enumerate(ids, 1):
        if i in seen:
            source = info if isinstance(info, str) else where(info)
            raise DataError(f"{source}: rows {seen[i]} and {n} have the same {what} {i!r}")
        seen[i] = n


def text_of(resp: Response | None) -> str | None:
    """The model's answer, or None for a failed request (which every task counts as wrong, and counts)."""
    if resp is None or not resp.ok or not isinstance(resp.text, str):
        return None
    return resp.text


def metric(value: float | None, stderr: float | None = None, n: int | None = None) -> dict:
    return {"value": value, "stderr": stderr, "n": n}
