"""The one name -> implementation registry: adapters, conditions, placements, import and export
formats, dispatchers.

An ``Entry`` names an implementation (a callable or class, or ``"module:attr"`` imported on first
use, so that listing names never imports torch or transformers) with a one-line summary; kinds that
need more per entry subclass it (``ep.policy.PlacementSpec``, ``replay.dispatchers.DispatcherEntry``).
``Registry.get(name)`` returns the implementation, ``Registry[name]`` the entry; an unknown name
raises a did-you-mean ``DodocoError`` naming the known ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dodoco.errors import did_you_mean

__all__ = ["Entry", "Registry", "lazy_attributes"]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One registered implementation: ``target`` is the object or ``"package.module:attribute"``."""

    name: str
    target: Any
    summary: str

    def load(self) -> Any:
        """The implementation (imported on first use when ``target`` is a string)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class Registry:
    """Entries by name, in registration order, e.g. ``CONDITIONS.get("prose")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> Entry:
        """Register an entry (a name registered twice is a bug: ValueError)."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} '{entry.name}' registered twice")
        self._entries[entry.name] = entry
        return entry

    def register(self, name: str, target: Any, summary: str) -> Entry:
        """Register a plain ``Entry``."""
        return self.add(Entry(name=name, target=target, summary=summary))

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    values = entries

    def entry(self, name: str) -> Entry:
        """The entry registered as ``name`` (did-you-mean DodocoError otherwise)."""
        try:
            return self._entries[name]
        except KeyError:
            raise did_you_mean(self.kind, name, self._entries) from None

    __getitem__ = entry

    def get(self, name: str) -> Any:
        """The implementation registered as ``name``."""
        return self.entry(name).load()

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def lazy_attributes(module: str, table: dict):
    """A module's ``__getattr__`` that imports ``table[name]`` ("package.module:attribute") on first use
    and keeps it, so that importing a package loads none of its heavy modules until a name is used."""

    def __getattr__(name: str):
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module '{module}' has no attribute '{name}'")
        mod, _, attr = target.partition(":")
        value = getattr(importlib.import_module(mod), attr)
        setattr(importlib.import_module(module), name, value)
        return value

    return __getattr__
