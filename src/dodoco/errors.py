"""User-facing errors: one line that names the offending value and the fix.

The CLI (``dodoco.cli``, the one error boundary) prints ``error: <message>`` and exits with status 2
for a ``DodocoError`` (a mistake in what the user asked for: flags, values, paths) and with status 1
for a ``DataError`` (a damaged or inconsistent run, an unreadable input) and for the environment
faults it translates (full disk, read-only folder, no permission, out of memory). A traceback is
shown only with ``dodoco --debug``. Asserts are kept for internal invariants.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DodocoError(Exception):
    """A mistake in what the user asked for or gave us (not a bug); the CLI exits with status 2."""

    exit_code = 2


class DataError(DodocoError):
    """Data that is damaged or inconsistent (a run whose files or manifest do not agree, an input file
    that cannot be read): not the user's typing, so the CLI exits with status 1."""

    exit_code = 1


def did_you_mean(kind: str, value: str, choices: Iterable[str]) -> DodocoError:
    """Build the error for an unknown name, suggesting the closest known one.

    >>> str(did_you_mean("condition", "prosa", ["prose", "code"]))
    "unknown condition 'prosa': did you mean 'prose'? (known: code, prose)"
    """
    choices = sorted(set(choices))
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return DodocoError(f"unknown {kind} '{value}': {hint}(known: {', '.join(choices)})")


def refuse(exc: Exception, marker: str, if_marker: str, otherwise: str) -> DodocoError:
    """The one-line error for a library's ``exc``: ``if_marker`` where its text holds ``marker`` (the
    case with its own fix), else ``otherwise``. Raise it ``from None``."""
    return DodocoError(if_marker if marker in str(exc) else otherwise)
