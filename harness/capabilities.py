"""Which selected tasks a model can serve: an understanding-only model cannot draw GenEval's images, a
generation-only one cannot answer POPE.

A task named on the command line that the model cannot serve stops the run before any work (one line, exit 2);
a task a suite brought in (`--tasks all`, `--tasks consistency`) is skipped instead, and the run records why
(`Manifest.skipped`), so the results table lists it and leaderboard cells say "not applicable".
"""
from __future__ import annotations

from harness.errors import HarnessError

#: what a model request kind is called in messages
ABILITY = {"understand": "image understanding (answering questions about images)",
           "generate": "image generation"}
MODEL_KINDS = tuple(ABILITY)


def model_capabilities(model) -> tuple[str, ...]:
    """The model request kinds a model answers (its runner `kinds`, restricted to the model kinds)."""
    return tuple(k for k in MODEL_KINDS if k in getattr(model, "kinds", MODEL_KINDS))


def missing_kinds(task, capabilities: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in (task.model_kinds or ()) if k not in capabilities)


def skip_reason(missing: tuple[str, ...]) -> str:
    return "needs " + " and ".join(ABILITY[k] for k in missing)


def split_tasks(model, tasks: list, named: set[str]) -> tuple[list, dict[str, str]]:
    """(the tasks to run, {skipped task: reason}). Raises for a task in `named` (given by name, not through a
    suite) that the model cannot serve, and when nothing is left to run."""
    label = getattr(model, "spec", None) or getattr(model, "name", "the model")
    capabilities = model_capabilities(model)
    runnable, skipped, refused = [], {}, {}
    for task in tasks:
        missing = missing_kinds(task, capabilities)
        if not missing:
            runnable.append(task)
        elif task.name in named:
            refused[task.name] = missing
        else:
            skipped[task.name] = skip_reason(missing)
    can = " and ".join(ABILITY[k] for k in capabilities) or "nothing"
    if refused:
        kinds = tuple(dict.fromkeys(k for m in refused.values() for k in m))
        hint = getattr(model, "capability_hint", None)     # e.g. which sibling checkpoint has the missing half
        advice = (hint(kinds) if hint else None) or "choose a model with that capability or other --tasks"
        raise HarnessError(f"--model {label} cannot run {', '.join(refused)}: the task{'s' if len(refused) > 1 else ''} "
                           f"{skip_reason(kinds)}, and this model only does {can}; {advice}")
    if not runnable:
        raise HarnessError(f"--model {label} can run none of the selected tasks ({', '.join(skipped)}): they "
                           f"need what this model lacks (it only does {can})")
    return runnable, skipped


def check_request(task, kind: str) -> None:
    """A task sending the model a kind of request it did not declare: the up-front check would have been wrong."""
    if task.model_kinds is not None and kind not in task.model_kinds:
        raise HarnessError(f"task {task.name} sent the model a {kind!r} request but declares model_kinds = "
                           f"{task.model_kinds}; add {kind!r} to the task's model_kinds")
