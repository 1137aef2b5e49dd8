"""The settings of one observation: what ``dodoco observe`` parses and ``dodoco.observe`` takes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dodoco.config import Config, check_allocation, check_fields
from dodoco.errors import DodocoError, did_you_mean
from dodoco.models.load import DTYPES

DEVICE = re.compile(r"^(cpu|cuda(:\d{1,4})?|mps|auto|auto-map)$")


@dataclass(frozen=True, kw_only=True)
class ObserveConfig(Config):
    """Observe ``model`` on each of ``conditions``: ``sequences`` sequences of ``seq_len`` tokens, run
    ``batch_size`` sequences per forward pass (the forward batch, nothing else), one run directory per
    condition under ``out``. ``batch``: the per-step batch sizes B of the metrics written afterwards.
    ``invariance``: measure batch invariance on the first batch (manifest ``batch_invariance``);
    ``quiet``: no progress bars. The metrics.parquet of each run is written by ``dodoco.analysis``.
    """

    model: str
    conditions: tuple[str, ...]
    seq_len: int
    sequences: int
    out: str
    batch_size: int = 8
    seed: int = 0
    dtype: str = "auto"
    device: str = "cpu"
    traces: bool = False
    trust_remote_code: bool = False
    overwrite: bool = False
    batch: tuple[int, ...] | None = None
    invariance: bool = True
    quiet: bool = False

    def __post_init__(self):
        check_fields(self)
        if not self.model.strip():
            raise DodocoError("--model is empty: name tiny:<family>, zoo:<family>, a local checkpoint or a hub id")
        if not self.conditions or any(not c.strip() for c in self.conditions):
            raise DodocoError(
                f"--conditions {','.join(self.conditions)!r} names no condition: give one or more, "
                "e.g. --conditions prose,mock-uniform (dodoco ls lists them)"
            )
        for flag, value in (
            ("--seq-len", self.seq_len),
            ("--sequences", self.sequences),
            ("--batch-size", self.batch_size),
        ):
            if value < 1:
                raise DodocoError(f"{flag} {value} must be a positive integer")
        if self.batch is not None and (not self.batch or min(self.batch) < 1):
            raise DodocoError(f"--batch {','.join(map(str, self.batch))!r} must list batch sizes >= 1, e.g. 1,8,32")
        check_allocation(
            self.sequences * self.seq_len * 8,
            f"--sequences {self.sequences} x --seq-len {self.seq_len} (the token ids of one condition)",
            "observe fewer or shorter sequences",
        )
        if self.dtype not in DTYPES:
            raise did_you_mean("dtype", self.dtype, DTYPES)
        if not DEVICE.match(self.device):
            raise DodocoError(
                f"--device {self.device!r} is not a device: give cpu, cuda, cuda:N, mps, auto or auto-map"
            )
        if not str(self.out).strip():
            raise DodocoError("--out is empty: name the folder that receives one run directory per condition")
