"""User-facing errors: one line that names the offending value and the fix.

The CLI prints ``error: <message>`` and exits with status 2 for any ``DodocoError``; a traceback is
shown only for bugs (anything else). Asserts are kept for internal invariants.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DodocoError(Exception):
    """A mistake in what the user asked for or gave us (not a bug)."""


def did_you_mean(kind: str, value: str, choices: Iterable[str]) -> DodocoError:
    """Build the error for an unknown name, suggesting the closest known one.

    >>> str(did_you_mean("condition", "prosa", ["prose", "code"]))
    "unknown condition 'prosa': did you mean 'prose'? (known: code, prose)"
    """
    choices = sorted(set(choices))
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return DodocoError(f"unknown {kind} '{value}': {hint}(known: {', '.join(choices)})")
