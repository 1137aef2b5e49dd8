"""Settings of ``dodoco zoo train`` and ``dodoco zoo ls`` as typed configs (flags and TOML keys alike)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dodoco.config import pick
from dodoco.config import Config
from dodoco.errors import DodocoError
from dodoco.training.settings import TrainSettings

__all__ = ["ZooLsConfig", "ZooTrainConfig"]


@dataclass(frozen=True, kw_only=True)
class ZooTrainConfig(Config, TrainSettings):
    """Which families (``family`` or ``all``), how to train them (``TrainConfig`` fields) and how the
    run executes (``RunOptions`` fields); ``json``/``out``: the trained models' summary rows as JSON."""

    family: str | None = None
    all: bool = False
    device: str = "cpu"
    out: str = "runs/zoo"
    resume: bool = False
    data: str | None = None
    time_budget: float = 0.0
    log_every: int = 50
    eval_every: int = 400
    save_every: int = 200
    note: str = ""
    json: str | None = None

    def __post_init__(self):
        if bool(self.family) == bool(self.all):
            raise DodocoError("give one of --family NAME or --all (which zoo families to train)")
        for name in ("steps", "batch_size", "seq_len", "warmup", "log_every", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise DodocoError(f"--{name.replace('_', '-')} {getattr(self, name)} must be a positive integer")
        if self.warmup >= self.steps:
            raise DodocoError(f"--warmup {self.warmup} must be smaller than --steps {self.steps}")
        if self.lr <= 0 or self.time_budget < 0:
            raise DodocoError(f"--lr {self.lr} must be > 0 and --time-budget {self.time_budget} >= 0")

    def families(self) -> list[str]:
        from dodoco.models.zoo import ZOO, spec

        return list(ZOO) if self.all else [spec(self.family).family]

    def train_config(self, family: str):
        from dodoco.training.train import TrainConfig

        return TrainConfig(family, **{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainSettings)})

    def run_options(self):
        from dodoco.models.load import _resolve_device
        from dodoco.training.train import RunOptions

        keep = pick(self, "resume time_budget log_every eval_every save_every note")
        return RunOptions(out=Path(self.out), device=_resolve_device(self.device), data_dir=self.data, **keep)


@dataclass(frozen=True, kw_only=True)
class ZooLsConfig(Config):
    """``dir``: a folder written by ``zoo train`` (None: the shipped zoo); json/out: the table as JSON."""

    dir: str | None = None
    json: str | None = None
    out: str | None = None
