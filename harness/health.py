"""A run's health: stop a run whose runner fails everything, and never call a run finished when a task's headline
could not be computed.

Failed requests are part of honest results (they count as failures), so one failure never stops a run. But a
runner that fails *every* request (a device that does not exist, weights that do not load, a judge whose key is
wrong) produces a table of zeros that looks like a measurement. The executor reports each runner's answers here,
per (target, kind): once a runner has answered its first two batches (or all its requests, when it has fewer) and
after every batch from then on, the run stops if

* every answer so far failed (the default), or
* more than `max_failure_rate` of them failed (`--max-failure-rate R`; 1 never stops).

Answers served from the cache count as successes (only successes are cached), so resuming a run whose remaining
requests are the few that fail does not stop it. Stopping raises RunFailed: the executor has committed every
finished batch, finished tasks keep their files, and the manifest says `failed`.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import RunFailed

#: a runner is judged after this many of its batches (or all of its requests)
WINDOW_BATCHES = 2


@dataclass
class _Seen:
    answered: int = 0
    failed: int = 0
    first_error: str | None = None


class Health:
    def __init__(self, max_failure_rate: float | None = None, exempt: tuple[str, ...] = ()):
        self.rate = max_failure_rate
        self.exempt = set(exempt)           # targets whose failures are expected (score: missing predictions)
        self._seen: dict[str, _Seen] = {}

    def observe(self, target: str, kind: str, ok: int, failed: int, first_error: str | None, batch: int,
                final: bool) -> None:
        """Count `ok` and `failed` answers of target.kind; raise RunFailed when the runner is judged unhealthy."""
        if target in self.exempt or self.rate == 1.0:
            return
        seen = self._seen.setdefault(f"{target}.{kind}", _Seen())
        seen.answered += ok + failed
        seen.failed += failed
        seen.first_error = seen.first_error or first_error
        if seen.answered == 0 or (seen.answered < WINDOW_BATCHES * max(1, batch) and not final):
            return
        if self.rate is None:
            if seen.failed < seen.answered:
                return
            what = f"failed on every one of its {seen.answered} requests so far"
        else:
            if seen.failed <= self.rate * seen.answered:
                return
            what = (f"failed on {seen.failed} of its {seen.answered} requests so far, more than "
                    f"--max-failure-rate {self.rate:g} allows")
        error = " ".join(str(seen.first_error or "no error message").split())[:300]
        raise RunFailed(f"runner {target}.{kind} {what} (first error: {error}); the run stops here and is marked "
                        "failed, keeping finished tasks and every answer computed so far; fix the cause and rerun "
                        "the same command, or pass --max-failure-rate 1 to carry on despite failures")


def headline_problems(results: dict) -> tuple[list[str], list[str]]:
    """(failures, notes) about tasks whose headline metric has no value ({task: TaskResult}).

    A missing headline on the whole data set is a failure of the run (every judgement failed, a category lost);
    under --limit, tasks that refuse a partial headline (WISE's Overall needs every prompt) give a note instead.
    A headline that the official formula leaves undefined for these answers (POPE's F1 for a model that never says
    yes), with no request failed, is a measurement: a note, and the run is complete."""
    failures, notes = [], []
    for name, res in results.items():
        metric = res.metric()
        if metric is None or metric.value is not None:    # a task without that metric declares no headline value
            continue
        details = res.details if isinstance(res.details, dict) else {}
        counts = res.counts
        undefined = res.undefined_reason()
        if undefined:
            notes.append(f"{name}: headline {res.headline!r} is undefined for these answers ({undefined}); "
                         "reported as undefined, the other metrics stand")
            continue
        reason = details.get(f"{res.headline}_refused")
        if not reason and counts.requests:
            reason = f"{counts.failed or 0} of {counts.requests} requests failed"
        line = f"{name}: headline {res.headline!r} could not be computed" + (f" ({reason})" if reason else "")
        dataset = res.dataset
        limited = dataset is not None and dataset.n_total is not None and dataset.n_evaluated is not None \
            and dataset.n_evaluated < dataset.n_total
        (notes if limited else failures).append(line)
    return failures, notes
