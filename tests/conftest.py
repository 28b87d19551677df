import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOUBLES = str(ROOT / "tests" / "doubles.py")
SHARED = ROOT.parent / "shared"


def run_cli(*args, cwd=None, timeout=600, env=None) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` in a fresh process, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=timeout, env=full_env)


def committed_model_rows(out) -> int:
    """How many model answers the cache shards under `out` hold (read-only: a run may still be writing)."""
    total = 0
    for db in (out / "cache").glob("responses.rank*.sqlite"):
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            total += conn.execute("SELECT COUNT(*) FROM responses WHERE target='model'").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            pass
    return total


@pytest.fixture(scope="session")
def doubles():
    """Register the test doubles in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("harness_test_doubles", DOUBLES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _hub_mode_per_test():
    """A failed hub probe switches the whole process offline (harness.hub.online); undo it after each test so
    tests see the environment they set up, not the one an earlier test left."""
    from harness import hub

    env = {v: os.environ.get(v) for v in hub.OFFLINE_VARIABLES}
    yield
    for v, value in env.items():
        if value is None:
            os.environ.pop(v, None)
        else:
            os.environ[v] = value
    was_offline = any((value or "").lower() in hub._TRUE for value in env.values())
    for module, attrs in hub.OFFLINE_CONSTANTS:
        for attr in attrs if module in sys.modules else ():
            setattr(sys.modules[module], attr, was_offline)
    hub._probed.clear()
    hub._unreachable = None
