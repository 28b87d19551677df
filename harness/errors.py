"""User-facing errors.

A `HarnessError` is a problem with the user's input or environment (a bad flag, a missing file, missing weights).
The CLI prints its message as one line and exits with code 2; anything else is a bug and keeps its traceback.
"""


class HarnessError(Exception):
    """An error the user can fix; its message names the bad thing and how to fix it."""

    exit_code = 2


class DataError(HarnessError):
    """A dataset file is missing or malformed (the message names the file, row and column)."""


class WeightsError(HarnessError):
    """Model or scorer weights are missing; the message says which files to place where."""


class CacheError(HarnessError):
    """The response cache cannot be used (a damaged shard, a read-only file); the message says how to go on."""


class RunFailed(HarnessError):
    """The run itself failed (a runner failing every request, a headline that could not be computed): its inputs
    may be fine, so the exit code differs from bad input's. What was computed is kept."""

    exit_code = 3


def storage_full(error: BaseException) -> str | None:
    """For a write that found its disk full or its quota spent (shared cluster filesystems have quotas): the
    one-line error, else None."""
    import errno

    if not isinstance(error, OSError) or error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = f" writing {error.filename}" if error.filename else ""
    return f"no space left{where} ({error.strerror}); free some, or choose another --output"
