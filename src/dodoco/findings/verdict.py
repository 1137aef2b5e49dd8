"""The verdict record every finding returns, and the checks that keep incomparable runs apart.

A ``Verdict`` carries the verdict string, the headline numbers, and named tables (lists of dicts):
``summary`` (one row per run, model or pair, each with its own verdict) and ``evidence`` (the
numbers behind it), plus any further table a finding needs (e.g. ``layers``). Every table prints
with ``dodoco.commands.emit`` and serialises to JSON/CSV unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["Verdict", "condition_kind", "require_same", "run_label"]


@dataclass
class Verdict:
    """One finding's answer.

    finding: "ep_invariance", "mock_vs_real" or "bands".
    verdict: the overall verdict string (the values are listed in docs/findings.md).
    numbers: headline numbers (floats, ints, strings), JSON-ready.
    tables: named tables; "summary" and "evidence" always exist (possibly empty).
    notes: what was skipped or assumed, one sentence each.
    """

    finding: str
    verdict: str
    numbers: dict = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

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
        return _clean({"finding": self.finding, "verdict": self.verdict, "numbers": self.numbers,
                       "tables": self.tables, "notes": self.notes})


def _plain(obj):
    """numpy scalars -> Python scalars inside dicts and lists (NaN stays a float)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _clean(obj):
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return _clean(obj.item())
    return obj


def condition_kind(manifest_condition: dict) -> str:
    """"mock" or "real" from a manifest's ``condition`` entry (its ``kind``, else the name's prefix)."""
    kind = manifest_condition.get("kind")
    if kind in ("mock", "real"):
        return kind
    return "mock" if str(manifest_condition.get("name", "")).startswith("mock-") else "real"


def run_label(item) -> str:
    """How an error names a run: its path when it has one, else model/condition/L<seq_len>."""
    path = getattr(item, "path", None) or (item.get("run") if isinstance(item, dict) else None)
    if path:
        return str(path)
    get = (lambda k: item.get(k, "?")) if isinstance(item, dict) else (lambda k: getattr(item, k, "?"))
    return f"{get('model')}/{get('condition')}/L{get('seq_len')}"


def require_same(items: Iterable, keys: tuple[str, ...], what: str) -> None:
    """Raise DodocoError naming the runs when ``items`` (objects or dicts) differ in any of ``keys``.

    >>> require_same([{"model": "a", "seq_len": 64}, {"model": "a", "seq_len": 128}], ("seq_len",), "x")
    Traceback (most recent call last):
    ...
    dodoco.errors.DodocoError: x mixes runs with different seq_len: a/?/L64 (seq_len 64), a/?/L128 (seq_len 128); pass runs of one seq_len
    """
    items = list(items)
    for key in keys:
        def get(it, k=key):
            return it.get(k) if isinstance(it, dict) else getattr(it, k)
        values = {get(it) for it in items}
        if len(values) > 1:
            named = ", ".join(f"{run_label(it)} ({key} {get(it)})" for it in items)
            raise DodocoError(f"{what} mixes runs with different {key}: {named}; pass runs of one {key}")
