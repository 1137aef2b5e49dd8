"""What a report section returns: ``Section`` with its ``Figure``s and ``Table``s, or ``SkipSection``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Figure", "Section", "SkipSection", "Table"]


class SkipSection(Exception):
    """Raised by a section whose data is absent; the message becomes the section's note."""


@dataclass
class Figure:
    name: str  # file stem, e.g. "ep-scan" -> fig-ep-scan.png
    png: bytes
    caption: str = ""


@dataclass
class Table:
    name: str  # file stem, e.g. "ep-invariance" -> ep-invariance.csv
    rows: list[dict]
    caption: str = ""
    columns: list[str] | None = None


@dataclass
class Section:
    title: str
    html: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
