"""Benchmark tasks: one package per benchmark, registered here lazily (importing this imports no task code)."""
from harness.registry import TASKS

#: suite name -> task names
SUITES: dict[str, list[str]] = {}
