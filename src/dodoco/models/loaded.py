"""``LoadedModel``: what every model loader returns (``models.load``, ``models.tiny``, ``models.zoo``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dodoco.models.tokenizer import TextTokenizer

__all__ = ["LoadedModel"]


@dataclass
class LoadedModel:
    """A model ready to observe, its tokenizer and what the manifest records about it."""

    model: Any
    tokenizer: TextTokenizer
    info: dict = field(default_factory=dict)
