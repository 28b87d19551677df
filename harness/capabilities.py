"""Which of the selected tasks a model can serve, decided before any work.

A task declares the model capabilities its stages ask for (`Task.model_kinds`: "understand", "generate"); a model
declares what it answers (`Runner.kinds`: an understanding-only model has ("understand",)). A task the user named
that the model cannot serve stops the command in one line (exit 2); a task that only came in with a suite (the
default `all`, `understanding`, ...) is skipped, and the run's results table and manifest say which and why, so a
single-capability model can run a suite and the leaderboards show "not applicable" for what it cannot do.
"""
from __future__ import annotations

from harness.errors import HarnessError

#: request kind -> the capability's name in messages
CAPABILITY = {"understand": "understanding", "generate": "image generation"}


def lacking(model, task) -> tuple[str, ...]:
    """The request kinds `task` (a Task class or object) asks of the model that `model` cannot answer."""
    return tuple(k for k in task.model_kinds if k not in model.kinds)


def _names(kinds) -> str:
    return " and ".join(CAPABILITY.get(k, k) for k in kinds)


def skip_reason(model, task) -> str:
    """One phrase saying why a task is skipped, e.g. 'needs image generation, which the model lacks (it only does understanding)'."""
    return f"needs {_names(lacking(model, task))}, which the model lacks (it only does {_names(model.kinds)})"


def split(model, tasks: list, named: set[str]) -> tuple[list, dict[str, str]]:
    """(tasks the model can serve, {skipped task: why}); raises one line when a task in `named` (chosen by name,
    not through a suite) cannot be served, or when none of the selection can."""
    spec = getattr(model, "spec", None) or getattr(model, "name", "the model")
    runnable, skipped, refused = [], {}, {}
    for task in tasks:
        lack = lacking(model, task)
        if not lack:
            runnable.append(task)
        elif task.name in named:
            refused[task.name] = lack
        else:
            skipped[task.name] = skip_reason(model, task)
    if refused or not runnable:
        bad = refused or {t.name: lacking(model, t) for t in tasks}
        kinds = tuple(dict.fromkeys(k for lack in bad.values() for k in lack))
        names = ", ".join(bad)
        verb = "needs" if len(bad) == 1 else "need"
        hint = model.capability_hint(kinds) if hasattr(model, "capability_hint") else ""
        raise HarnessError(f"--tasks {names}: {verb} {_names(kinds)} ({', '.join(kinds)} requests), which --model "
                           f"{spec} lacks (it only does {_names(model.kinds)})"
                           + (f"; {hint}" if hint else ""))
    return runnable, skipped


def check_request(task, kind: str) -> None:
    """A task sending the model a kind of request it did not declare: the up-front check would have been wrong."""
    if kind not in task.model_kinds:
        raise HarnessError(f"task {task.name} sent the model a {kind!r} request but declares model_kinds = "
                           f"{task.model_kinds}; add {kind!r} to the task's model_kinds")
