"""The layering the README's Architecture section describes, checked by reading every import (top-level and
inside functions) of the packages:

  engine (harness/, but harness/models and harness/scorers) -> tasks, adapters, scorers only through the registry
  tasks (tasks/)                     never import a model adapter, a scorer, the trainer or the tiny-model factory
  adapters (harness/models), scorers (harness/scorers)   know nothing of tasks, the trainer or the factory
  trainer (unigame/)                 imported by nobody
  tiny-model factory (tinyfactory/)  imported by nobody but the trainer's test helpers
and: no import cycles between modules, no private (_name) imported from another module.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "tasks", "unigame", "tinyfactory")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(module: str) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement of `module`, relative ones resolved."""
    path = MODULES[module]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = package + ("." + base if base else "")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full, None) if full in MODULES else (base, alias.name))
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(module: str) -> str:
    for prefix, layer in (("harness.models", "adapters"), ("harness.scorers", "scorers"), ("harness", "engine"),
                          ("tasks", "tasks"), ("unigame", "trainer"), ("tinyfactory", "factory")):
        if _within(module, prefix):
            return layer
    raise AssertionError(module)


GRAPH = {m: {t for t, _ in _imports(m) if any(_within(t, p) for p in PACKAGES)} for m in MODULES}
#: the package modules that are registration tables (and --model / scorer resolution): the engine may import them
REGISTRATION_TABLES = {"harness.models", "harness.scorers"}


def _violations(layer: str, forbidden) -> list[str]:
    return [f"{m} imports {t}" for m in sorted(MODULES) if _layer(m) == layer for t in sorted(GRAPH[m])
            if forbidden(t)]


def test_the_engine_reaches_tasks_adapters_and_scorers_only_through_the_registry():
    def forbidden(t):
        return (_within(t, "tasks") or _within(t, "unigame") or _within(t, "tinyfactory")
                or (_layer(t) in ("adapters", "scorers") and t not in REGISTRATION_TABLES))
    assert _violations("engine", forbidden) == []


def test_tasks_never_import_adapters_scorers_the_trainer_or_the_factory():
    def forbidden(t):
        return _layer(t) in ("adapters", "scorers", "trainer", "factory")
    assert _violations("tasks", forbidden) == []


@pytest.mark.parametrize("layer", ["adapters", "scorers"])
def test_adapters_and_scorers_know_nothing_of_tasks(layer):
    assert _violations(layer, lambda t: _layer(t) in ("tasks", "trainer", "factory")) == []


def test_nothing_imports_the_trainer_and_only_its_test_helpers_import_the_factory():
    assert [f"{m} imports {t}" for m in MODULES for t in GRAPH[m]
            if _layer(t) == "trainer" and _layer(m) != "trainer"] == []
    assert sorted({m for m in MODULES for t in GRAPH[m] if _layer(t) == "factory" and _layer(m) != "factory"}) \
        == ["unigame.testing"]


def test_no_import_cycles():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v] & MODULES.keys():
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_private_names_imported_from_another_module():
    found = [f"{m} imports {t}.{name}" for m in sorted(MODULES) for t, name in _imports(m)
             if name and name.startswith("_") and not name.startswith("__") and t in MODULES and t != m]
    assert found == []


def test_the_checks_see_the_layers():
    """Guard against a test that passes because it reads nothing."""
    layers = {_layer(m) for m in MODULES}
    assert layers == {"engine", "adapters", "scorers", "tasks", "trainer", "factory"}
    assert "harness.registry" in GRAPH["harness.api"] and "harness.models" in GRAPH["harness.api"]
    assert len(MODULES) > 100


def test_nothing_is_unpickled_unsafely():
    """Loading a file from elsewhere (a checkpoint folder, a pretraining workdir, scorer weights) never runs code:
    no torch.load without weights_only=True, no pickle.load(s) anywhere in the packages."""
    unsafe = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            if owner == "pickle" and node.func.attr in ("load", "loads", "Unpickler"):
                unsafe.append(f"{module}:{node.lineno}")
            if owner == "torch" and node.func.attr == "load":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                if not safe:
                    unsafe.append(f"{module}:{node.lineno}")
    assert unsafe == []
