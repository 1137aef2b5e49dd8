"""The training settings a user chooses, shared by ``TrainConfig`` and ``ZooTrainConfig`` (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainSettings"]


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """The training settings a user chooses (``dodoco zoo train`` flags; ``TrainConfig`` adds the rest)."""

    steps: int = 1200
    batch_size: int = 32
    seq_len: int = 256
    lr: float = 3e-3
    warmup: int = 100
    seed: int = 0
