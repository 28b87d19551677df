"""SIGTERM ends a command the way Ctrl-C does.

Schedulers stop jobs with SIGTERM (Slurm at its time limit or on preemption, Kubernetes on eviction) and torchrun
stops the other workers with it when one fails. Python's default is to die on the spot, leaving the batches queued
for storing unwritten and a manifest that says `running` forever. Raised as a KeyboardInterrupt instead, it takes the
path an interrupt takes: queued batches are stored, the manifest says `interrupted`, and the command exits 143.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: the exit status of a process ended by SIGTERM, as shells and schedulers report it
EXIT_CODE = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread."""


#: inside deferred(): SIGTERM is noted here instead of raised
_deferring = False
_requested = False


def _raise_terminated(signum, frame) -> None:
    global _requested
    signal.signal(signal.SIGTERM, signal.SIG_DFL)     # a second SIGTERM ends the process at once
    if _deferring:
        _requested = True
        return
    raise Terminated()


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, a SIGTERM is only noted (`requested()`), so the unit of work under way (a training step) can end
    and be saved before the stop; one noted and not acted on is raised when the block ends."""
    global _deferring, _requested
    _deferring, _requested = True, False
    try:
        yield
    finally:
        _deferring = False
    if _requested:
        raise Terminated()


@contextmanager
def immediate() -> Iterator[None]:
    """Inside deferred(), work a SIGTERM may cut short at once (an evaluation, whose finished answers are stored
    batch by batch); a SIGTERM noted before it begins stops it before it begins."""
    global _deferring
    outer = _deferring
    if outer and _requested:
        raise Terminated()
    _deferring = False
    try:
        yield
    finally:
        _deferring = outer


def requested() -> bool:
    """Whether a SIGTERM arrived inside deferred()."""
    return _requested


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises Terminated in the main thread (where signal handlers live; elsewhere this does
    nothing); the previous handler is back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_stop(line: str) -> None:
    """The one line a stopped command ends with, printed by rank 0 only: a scheduler signals every process of a
    job (and a terminal's Ctrl-C reaches every process of its group), so each rank would print it again."""
    import sys

    from harness.distributed import from_env

    if from_env().main:
        print(line, file=sys.stderr)


def end_command(error: BaseException, *, resume: str, kept: str = "", debug: bool = False) -> int | None:
    """The exit status of a command ended by `error`, after its one line on stderr, for the endings every command
    shares: SIGTERM, Ctrl-C, a problem with the input (HarnessError) and a full disk. None for any other error, and
    under --debug for the last two (their traceback is what it asks for), so that the caller re-raises. `resume` says
    how to go on, `kept` what of the work is safe."""
    import sys

    from harness.errors import HarnessError, RunFailed, storage_full

    said = f": {kept}; {resume}" if kept else f"; {resume}"
    if isinstance(error, Terminated):           # a KeyboardInterrupt too: test it first
        report_stop(f"\nterminated (SIGTERM){said}")
        return EXIT_CODE
    if isinstance(error, KeyboardInterrupt):
        report_stop(f"\ninterrupted{said}")
        return 128 + signal.SIGINT
    if debug:
        return None
    if isinstance(error, HarnessError):
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    full = storage_full(error) if isinstance(error, OSError) else None
    if full is None:
        return None
    print(f"error: {full}, then {resume}" + (f": {kept}" if kept else ""), file=sys.stderr)
    return RunFailed.exit_code
