"""One generic registry for everything the engine finds by name: tasks, models, scorers, suites and aggregates.

Entries are lazy "module:attr" strings with a one-line description, so listing what exists imports nothing heavy
(no torch), or small values declared directly (`put`: a suite's task list, an aggregate's declaration). Third-party
packages add entries through entry points (groups `harness.tasks`, `harness.models`, `harness.scorers`,
`harness.suites`, `harness.aggregates`); a Python file passed with `--include` can register eagerly with the
`register` decorator or `put`. The engine imports no task, model or scorer module itself: the built-in ones are
declared by the packages named below (`tasks`, `harness.models`, `harness.scorers`), imported on first lookup.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Callable

from harness.errors import HarnessError


@dataclass
class Entry:
    name: str
    target: str | None          # "module:attr" for lazy entries
    description: str = ""
    origin: str = "builtin"
    obj: Any = None             # set once loaded, or directly for eager entries


class Registry:
    def __init__(self, kind: str, group: str, builtins: str | None = None):
        self.kind = kind                # "task", "model", "scorer": used in messages
        self.group = group              # entry-point group
        self._builtins = builtins       # module whose import declares the built-in entries
        self._entries: dict[str, Entry] = {}
        self._discovered = False

    def add(self, name: str, target: str, description: str = "", origin: str = "builtin") -> None:
        self._entries[name] = Entry(name, target, description, origin)

    def put(self, name: str, obj: Any, description: str = "", origin: str = "builtin") -> None:
        """Declare a value directly (a suite's task list, an aggregate)."""
        self._entries[name] = Entry(name, None, description, origin, obj)

    def register(self, name: str, description: str = "") -> Callable:
        """Decorator registering an object directly (used by plugin files loaded with --include)."""
        def deco(obj):
            doc = description or (obj.__doc__ or "").strip().splitlines()[0:1]
            self._entries[name] = Entry(name, None, doc if isinstance(doc, str) else (doc[0] if doc else ""),
                                        "include", obj)
            return obj
        return deco

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self._builtins:
            importlib.import_module(self._builtins)
        for ep in importlib.metadata.entry_points(group=self.group):
            if ep.name not in self._entries:
                dist = getattr(ep, "dist", None)
                self.add(ep.name, ep.value, origin=f"plugin:{dist.name}" if dist else "plugin")

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._discover()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def entry(self, name: str) -> Entry:
        self._discover()
        if name not in self._entries:
            raise HarnessError(unknown_name_message(self.kind, name, self._entries))
        return self._entries[name]

    def load(self, name: str) -> Any:
        entry = self.entry(name)
        if entry.obj is None:
            module_name, _, attr = entry.target.partition(":")
            module = importlib.import_module(module_name)
            entry.obj = getattr(module, attr)
        return entry.obj


def unknown_name_message(kind: str, name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = {"task": "python -m harness tasks", "model": "python -m harness models",
               "scorer": "python -m harness scorers", "suite": "python -m harness tasks"}.get(kind, "")
    see = f" (see `{listing}`)" if listing and not close else ""
    return f"unknown {kind} {name!r}{hint}{see}"


TASKS = Registry("task", "harness.tasks", builtins="tasks")
MODELS = Registry("model", "harness.models", builtins="harness.models")
SCORERS = Registry("scorer", "harness.scorers", builtins="harness.scorers")
#: suite name -> tuple of task names
SUITES = Registry("suite", "harness.suites", builtins="tasks")
#: cross-task aggregate name -> harness.aggregates.Aggregate (UniGame's Consistency Score, understanding Overall)
AGGREGATES = Registry("aggregate", "harness.aggregates", builtins="tasks")


def include(paths: list[str]) -> None:
    """Import Python files (or every .py file of a folder) so their `register` decorators run."""
    import importlib.util
    from pathlib import Path

    for raw in paths:
        p = Path(raw)
        files = sorted(p.glob("*.py")) if p.is_dir() else [p]
        if not p.exists():
            raise HarnessError(f"--include {raw}: no such file or folder")
        for f in files:
            spec = importlib.util.spec_from_file_location(f"harness_include_{f.stem}", f)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # a broken plugin file is the user's to fix: say which
                raise HarnessError(f"--include {f}: importing it failed: {type(e).__name__}: {e}") from e
