import os
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


@pytest.fixture(scope="session")
def doubles():
    """Register the test doubles in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("harness_test_doubles", DOUBLES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
