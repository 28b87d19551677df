"""Every third-party module the packages import is a declared dependency: the core ones in `dependencies` (the
default job runs right after `pip install -e .`), the rest in the optional extra that says so. CI also runs the
README's first command in a fresh virtual environment without any extra."""
import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "tasks", "unigame", "tinyfactory")


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    norm = lambda r: Requirement(r).name.lower().replace("_", "-")  # noqa: E731
    core = {norm(r) for r in project["dependencies"]}
    extras = {name: {norm(r) for r in reqs} for name, reqs in project["optional-dependencies"].items()}
    return core, extras


def _imports() -> dict[str, set[str]]:
    """Top-level module name -> the files importing it (absolute imports of modules outside this project)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


#: modules reached only through an optional extra (imported lazily, where that feature is used)
OPTIONAL = {"open_clip": "scorers", "dreamsim": "scorers", "diffusers": "scorers", "lmms_eval": "lmms", "loguru": "lmms"}


def test_every_imported_distribution_is_declared():
    core, extras = _declared()
    dists = packages_distributions()
    for module, files in sorted(_imports().items()):
        if module in OPTIONAL:
            extra = OPTIONAL[module]
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            if module in dists:
                assert names & (extras[extra] | extras.get("test", set())) or extra == "lmms", (module, extra)
            continue
        if module not in dists:
            pytest.fail(f"{module} (imported by {sorted(files)[0]}) is not installed: declare it")
        names = {d.lower().replace("_", "-") for d in dists[module]}
        assert names & core, f"{module} (imported by {sorted(files)[0]}) comes from {names}, not a core dependency"


def test_optional_modules_are_only_imported_inside_functions():
    """A module-level import of an extra's package would break `pip install -e .` without that extra."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    bad = [n for n in names if n.split(".")[0] in OPTIONAL]
                    assert not bad or path.name == "lmms.py", f"{path.relative_to(ROOT)} imports {bad[0]} at import"
