"""The verdict record every finding returns, the few-steps rule, and how sentences write numbers.

A ``Verdict`` carries the verdict string, the headline numbers, named tables (lists of dicts:
``summary`` with one row per run, model or pair and ``evidence`` with the numbers behind it, plus
any further table a finding needs) and plain sentences that state what was found with numbers and
95% intervals. Every table prints with ``dodoco.report.tables.print_table`` and serialises to
JSON/CSV unchanged.

Few steps: a statistic over steps that rests on ``FEW_STEPS`` (2) steps or fewer has no interval
(a bootstrap over one or two values has zero or meaningless width): its ``lo``/``hi`` are NaN, its
row says how many steps it rests on, and the verdicts leave it out of their judgement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dodoco.ep.result import FEW_STEPS  # a statistic on this many steps or fewer: no interval, not judged
from dodoco.store.atomic import json_safe

__all__ = ["FEW_STEPS", "Verdict", "few", "num", "num_ci", "run_label", "some"]


@dataclass
class Verdict:
    """One finding's answer.

    finding: "ep_invariance", "mock_vs_real" or "bands".
    verdict: the overall verdict string (the values are listed in docs/findings.md).
    numbers: headline numbers (floats, ints, strings), JSON-ready.
    tables: named tables; "summary" and "evidence" always exist (possibly empty).
    notes: what was left out or assumed, one sentence each.
    sentences: what was found, in plain sentences with numbers and intervals (headline first).
    """

    finding: str
    verdict: str
    numbers: dict = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.tables.setdefault("summary", [])
        self.tables.setdefault("evidence", [])
        self.numbers = _plain(self.numbers)
        self.tables = _plain(self.tables)

    @property
    def summary(self) -> list[dict]:
        return self.tables["summary"]

    @property
    def evidence(self) -> list[dict]:
        return self.tables["evidence"]

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN -> None)."""
        return json_safe(
            {
                "finding": self.finding,
                "verdict": self.verdict,
                "sentences": self.sentences,
                "numbers": self.numbers,
                "tables": self.tables,
                "notes": self.notes,
            }
        )


def _plain(obj):
    """numpy scalars -> Python scalars inside dicts and lists (NaN stays a float)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def few(steps) -> bool:
    """True when a statistic over ``steps`` steps rests on too few to have an interval."""
    return int(steps) <= FEW_STEPS


def num(x, digits: int = 3) -> str:
    """A number for a sentence: ``digits`` decimals, "n/a" when not finite."""
    return f"{x:.{digits}f}" if x is not None and np.isfinite(x) else "n/a"


def num_ci(x, lo, hi, steps=None, digits: int = 3) -> str:
    """``"1.234 [1.200, 1.260]"``; with no interval (few steps) ``"1.234 (1 step, no interval)"``."""
    if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
        return f"{num(x, digits)} [{num(lo, digits)}, {num(hi, digits)}]"
    if steps is not None:
        return f"{num(x, digits)} ({int(steps)} step{'s' if int(steps) != 1 else ''}, no interval)"
    return num(x, digits)


def some(names: Iterable[str], limit: int = 3) -> str:
    """``"a, b, c and 2 more"``: at most ``limit`` names of a list, for a sentence."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def run_label(item) -> str:
    """How an error names a run: its path when it has one, else model/condition/L<seq_len>."""
    path = getattr(item, "path", None) or (item.get("run") if isinstance(item, dict) else None)
    if path:
        return str(path)
    get = (lambda k: item.get(k, "?")) if isinstance(item, dict) else (lambda k: getattr(item, k, "?"))
    return f"{get('model')}/{get('condition')}/L{get('seq_len')}"
