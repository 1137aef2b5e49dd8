"""What ``judge`` computes: ``FindingsOptions`` (the Python API, the report and ``dodoco findings``
share it) and ``FindingsConfig`` (the ``findings`` command: the options plus runs and --json).

Field names are the flags' names (``--ep-batch`` -> ``ep_batch``), so a TOML file (``--config``)
has the same keys as the command line. Every value is checked here, before any work, with a
one-line error that names the value and the fix. Defaults and their reasons: docs/findings.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dodoco import defaults
from dodoco.config import Config
from dodoco.errors import DodocoError

__all__ = ["FindingsConfig", "FindingsOptions"]


def _positive(flag: str, values, example: str) -> None:
    for v in values:
        if v < 1:
            raise DodocoError(f"{flag} {v} must be >= 1: give e.g. {flag} {example}")


@dataclass(frozen=True, kw_only=True)
class FindingsOptions(Config):
    """The analysis behind the verdicts.

    batch: batch sizes B (sequences per rank per step, N = 1) of the per-step Gini.
    ep: EP degrees N of the scan (None: 4, 8, 16, 32 and larger powers of two up to E).
    ep_batch: per-rank batch B of the EP scan (None: per run, the largest of 1, 2, 4, 8 that leaves
        more than two steps at the largest N scanned, else 1).
    placement: placements scanned; the first of them holds the verdict's receiver skew baseline
        (contiguous by default), the others are compared with it.
    ref_batch: batch of the bands and of the mock/real ratio sentence.
    threshold: EP invariance: largest relative change of the per-expert max/mean over N called
        "intrinsic" (0.05 = 5%).
    low, high: band thresholds on real-text Gini (data-resilient <= low on prose; persistently
        concentrated >= high on every real condition).
    groups: number of data-derived groups of the bands.
    seed, n_boot: step order and bootstrap resamples.
    """

    batch: tuple[int, ...] = defaults.BATCHES
    ep: tuple[int, ...] | None = None
    ep_batch: int | None = None
    placement: tuple[str, ...] = defaults.PLACEMENTS
    ref_batch: int = defaults.REF_BATCH
    threshold: float = defaults.INVARIANCE_THRESHOLD
    low: float = defaults.BAND_LOW
    high: float = defaults.BAND_HIGH
    groups: int = defaults.BAND_GROUPS
    seed: int = 0
    n_boot: int = defaults.N_BOOT

    def __post_init__(self):
        from dodoco.ep.placements import check_placements

        if not self.batch:
            raise DodocoError("--batch needs at least one batch size: give e.g. --batch 1,2,4,8,16,32")
        _positive("--batch", self.batch, "1,2,4,8")
        _positive("--ep", self.ep or (), "4,8,16,32")
        _positive("--ep-batch", [self.ep_batch] if self.ep_batch is not None else [], "1")
        _positive("--ref-batch", [self.ref_batch], "8")
        _positive("--groups", [self.groups], "2")
        _positive("--n-boot", [self.n_boot], "1000")
        if not self.placement:
            raise DodocoError("--placement needs at least one placement: give e.g. --placement contiguous,eplb")
        check_placements(self.placement)
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise DodocoError(f"--threshold {self.threshold} must be >= 0 (a fraction: 0.05 = 5%)")
        if not (0 <= self.low < self.high <= 1):
            raise DodocoError(
                f"band thresholds need 0 <= --low < --high <= 1, got --low {self.low} "
                f"--high {self.high}: e.g. --low 0.15 --high 0.24"
            )

    def findings_options(self) -> FindingsOptions:
        """These options alone (a subclass's extra fields dropped): what ``judge`` depends on."""
        return FindingsOptions(**{k: getattr(self, k) for k in FindingsOptions.keys()})


@dataclass(frozen=True, kw_only=True)
class FindingsConfig(FindingsOptions):
    """``dodoco findings RUNS [--json PATH] [-o FILE]``: the options, the runs and where the JSON goes."""

    runs: tuple[str, ...]
    json: str | None = None
    out: str | None = None
