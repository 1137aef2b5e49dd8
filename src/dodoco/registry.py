"""One lazy name -> implementation registry for adapters, conditions, placements and formats.

Entries are registered as ``"module:attr"`` strings so that listing names never imports torch or
transformers; ``get`` imports on first use. Unknown names raise a did-you-mean ``DodocoError``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from dodoco.errors import did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:attribute"
    summary: str


class Registry:
    """Maps names to lazily imported objects, e.g. ``CONDITIONS.get("prose")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, summary: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = Entry(name, target, summary)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise did_you_mean(self.kind, name, self._entries) from None

    def get(self, name: str) -> Any:
        module, _, attr = self.entry(name).target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
