"""Progress of a pooled stage: a tqdm bar on a terminal, plain lines in a log file.

A batch job's stderr (Slurm's `slurm-<id>.out`, a Kubernetes log) is no terminal: there a bar's carriage returns
pile up into one line megabytes long that no one can read or grep. There each stage prints a line at most every
`line_interval()` seconds (HARNESS_PROGRESS_INTERVAL, default LINE_INTERVAL), and one when it ends.
"""
from __future__ import annotations

import math
import os
import sys
import time

from tqdm.auto import tqdm

from harness.errors import HarnessError

#: seconds between two progress lines of one stage when stderr is not a terminal, unless the environment says
LINE_INTERVAL = 30.0
INTERVAL_VARIABLE = "HARNESS_PROGRESS_INTERVAL"


def line_interval() -> float:
    """The seconds between two progress lines in a log file: $HARNESS_PROGRESS_INTERVAL, or LINE_INTERVAL."""
    value = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not value:
        return LINE_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise HarnessError(f"{INTERVAL_VARIABLE}={value}: give the seconds between two progress lines in a log "
                           f"file, a number of at least 0 (default {LINE_INTERVAL:g}), or unset it")
    return seconds


def stage_progress(total: int, initial: int, desc: str, postfix: dict, enabled: bool, file=None):
    """A progress object with the part of tqdm's interface the executor uses (update, set_postfix,
    set_description_str, refresh, close, n, total)."""
    file = file or sys.stderr
    if enabled and not _is_terminal(file):
        return LineProgress(total, initial, desc, postfix, file, line_interval())
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="req", dynamic_ncols=True,
                mininterval=1.0, postfix=postfix, file=file)


def _is_terminal(file) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """One line per `interval` seconds: `label: done/total (pct%), rate req/s, eta, cached=.., failed=..`."""

    def __init__(self, total: int, initial: int, desc: str, postfix: dict, file, interval: float = LINE_INTERVAL):
        self.total, self.n, self.desc, self.postfix, self.file = total, initial, desc, dict(postfix), file
        self.interval = interval
        self._initial, self._started = initial, time.monotonic()
        self._printed_at = self._started        # the first line comes one interval in: short stages print one
        self._last_state = None

    def update(self, n: int = 1) -> None:
        self.n += n
        self.refresh(force=False)

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = values

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self, force: bool = False) -> None:
        if force or time.monotonic() - self._printed_at >= self.interval:
            self._print()

    def close(self) -> None:
        self._print()

    def _print(self) -> None:
        state = (self.n, self.desc, tuple(self.postfix.items()))
        if state != self._last_state:         # nothing new since the last line: the clock alone is no news
            print(self.line(), file=self.file, flush=True)
            self._last_state = state
        self._printed_at = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = (self.n - self._initial) / elapsed
        pct = 100.0 * self.n / self.total if self.total else 100.0
        left = self.total - self.n
        eta = f", eta {_duration(left / rate)}" if rate > 0 and left > 0 else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return (f"{self.desc}: {self.n}/{self.total} ({pct:.0f}%), {rate:.1f} req/s, elapsed {_duration(elapsed)}"
                f"{eta}{extra}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
