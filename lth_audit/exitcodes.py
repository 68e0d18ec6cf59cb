"""Exit statuses of every `lth-audit` command, and the one place where exceptions become them.

0: every claim passed or was boundary; 1: a claim failed (the only status that means "the evidence
contradicts a claim"); 2: bad input or a problem with the environment (a missing file, a full disk,
no CUDA, ...); 3: a bug in lth-audit (shown with its traceback); 130: interrupted (Ctrl-C).
Problems get short messages on stderr, no traceback unless `--debug`.
"""

from __future__ import annotations

import errno
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130

_KEPT = "lth_kept"


class CommandError(Exception):
    """A command cannot do what was asked (options that do not go together, no CUDA, Ray missing, a lock
    held): exit 2 with this message."""


INTERRUPTIONS = (KeyboardInterrupt, OSError, MemoryError, RuntimeError)
"""What stops a long command in the middle (Ctrl-C, a full disk, out of memory, CUDA errors)."""


@contextmanager
def kept(note: str) -> Iterator[None]:
    """Say what survives when the block is interrupted (`note` joins the one-line message). Bad input
    is not an interruption: its message says what to fix."""
    try:
        yield
    except INTERRUPTIONS as exc:
        if not hasattr(exc, _KEPT):
            setattr(exc, _KEPT, note)
        raise


@contextmanager
def reported(*types: type[BaseException]) -> Iterator[None]:
    """Exceptions of `types` raised in the block are CommandErrors (exit 2, their message)."""
    try:
        yield
    except types as exc:
        problem = CommandError(str(exc) or type(exc).__name__)
        if hasattr(exc, _KEPT):
            setattr(problem, _KEPT, getattr(exc, _KEPT))
        raise problem from exc


def _oserror(exc: OSError) -> str:
    where = " ".join(repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full{' writing ' + where if where else ''} ({exc.strerror}): free some space and run again"
    return f"{exc.strerror or exc}{': ' + where if where else ''}"


def classify(exc: BaseException) -> tuple[int, list[str]] | None:
    """(exit status, message lines) of an exception that is not a bug; None for a bug."""
    from .records import InputError
    from .thresholds import MissingThresholds

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, ["interrupted (Ctrl-C)"]
    if isinstance(exc, InputError):
        return EXIT_BAD_INPUT, [f"error: {p}" for p in exc.problems]
    if isinstance(exc, (MissingThresholds, CommandError)):
        return EXIT_BAD_INPUT, [f"error: {exc}"]
    if isinstance(exc, OSError):
        return EXIT_BAD_INPUT, [f"error: {_oserror(exc)}"]
    if isinstance(exc, MemoryError):
        return EXIT_BAD_INPUT, ["error: out of memory"]
    if type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic"):
        errors = exc.errors(include_url=False)  # type: ignore[attr-defined]
        return EXIT_BAD_INPUT, [f"error: {'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in errors]
    return None


def run_guarded(call: Callable[[], int], debug: bool = False, stderr: TextIO | None = None) -> int:
    """`call()`'s exit status; an exception becomes its status and a short message (traceback with `debug`)."""
    err = stderr or sys.stderr
    try:
        return call()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - this is the one place exceptions become exit statuses
        mapped = classify(exc)
        if mapped is None:
            traceback.print_exc(file=err)
            print("lth-audit: internal error, a bug in lth-audit (not in your input); please report it with the "
                  f"traceback above (exit status {EXIT_BUG})", file=err)
            return EXIT_BUG
        status, lines = mapped
        if debug:
            traceback.print_exc(file=err)
        note = getattr(exc, _KEPT, None)
        if note:
            lines[-1] = f"{lines[-1]}; {note}"
        for line in lines:
            print(line, file=err)
        return status
