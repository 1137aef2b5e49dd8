"""Replay settings and the cases they select from run directories (no torch needed here).

``ReplayConfig`` is what one ``dodoco replay`` asks for; ``build_cases`` turns it into the list of
all_to_all_single cases for N ranks: the real condition, a mock condition and a balanced control
with the same per-rank bytes, plus optional synthetic receiver-skew controls (for calibration).

Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences per rank per step,
H hidden size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dodoco.errors import DodocoError, did_you_mean
from dodoco.ep.steps import require_steps
from dodoco.replay.plan import ReplayCase, balanced_splits, run_cases, skewed_splits

__all__ = ["DTYPES", "ReplayConfig", "build_cases", "dtype_bytes", "pick_runs"]

#: Row element types the replay sends, with their sizes in bytes.
DTYPES = {"bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "fp32": 4, "float32": 4, "fp8": 1}


def dtype_bytes(name: str) -> int:
    if name not in DTYPES:
        raise did_you_mean("dtype", name, DTYPES)
    return DTYPES[name]


@dataclass(frozen=True, kw_only=True)
class ReplayConfig:
    """One replay: which runs, how wide the rows, how it is timed (see ``dodoco replay --help``)."""

    runs: tuple[str, ...] = ()
    condition: str | None = None  # the real condition; None: the only non-mock run
    mock: str | None = None  # None: the first mock-* run found; "none": no mock
    batch: int = 1
    hidden: int = 2048
    dtype: str = "bf16"
    backend: str = "nccl"
    placement: str = "contiguous"
    seed: int = 0
    layers: tuple[int, ...] | None = None
    max_steps: int | None = None
    skew: tuple[float, ...] = ()
    iters: int = 30
    warmup: int = 5
    buffers: int = 4  # minimum rotating buffer sets (more when a set is smaller than L2)
    sweep: bool = False
    sweep_min: int = 1 << 10
    sweep_max: int = 512 << 20
    check: bool = True
    timeout_s: float = 300.0
    dispatcher: str = "alltoall"
    out: str | None = None
    json: str | None = None  # the summary table as JSON ('-' = stdout)
    note: str = ""

    def __post_init__(self):
        dtype_bytes(self.dtype)
        if self.backend not in ("nccl", "gloo"):
            raise did_you_mean("backend", self.backend, ["nccl", "gloo"])
        if self.dispatcher not in ("alltoall", "deepep"):
            raise did_you_mean("dispatcher", self.dispatcher, ["alltoall", "deepep"])
        for name in ("batch", "hidden", "iters", "buffers"):
            if int(getattr(self, name)) < 1:
                raise DodocoError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.timeout_s <= 0:
            raise DodocoError(f"--warmup {self.warmup} must be >= 0 and --timeout {self.timeout_s} > 0")

    @property
    def row_bytes(self) -> int:
        """Bytes of one H-wide row: H * bytes per element."""
        return int(self.hidden) * dtype_bytes(self.dtype)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["runs"] = list(self.runs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ReplayConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DodocoError(f"unknown replay settings {unknown}: known are {sorted(known)}")
        d = dict(d)
        for k in ("runs", "layers", "skew"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


def pick_runs(cfg: ReplayConfig):
    """(real Run, mock Run or None) named by cfg among the runs found under cfg.runs."""
    from dodoco.store import find_runs

    if not cfg.runs:
        raise DodocoError("no run given: name a run directory (or a folder of runs) from `dodoco observe`")
    runs = find_runs(cfg.runs)
    by_name = {r.condition: r for r in runs}
    mocks = [r for r in runs if r.condition.startswith("mock")]
    if cfg.condition is None:
        real = [r for r in runs if not r.condition.startswith("mock")]
        if len(real) != 1:
            raise DodocoError(f"found conditions {sorted(by_name)}: pick the real one with --condition")
        real = real[0]
    elif cfg.condition in by_name:
        real = by_name[cfg.condition]
    else:
        raise did_you_mean("condition", cfg.condition, by_name)
    if cfg.mock == "none":
        mock = None
    elif cfg.mock is None:
        mock = next((r for r in mocks if r is not real), None)
    elif cfg.mock in by_name:
        mock = by_name[cfg.mock]
    else:
        raise did_you_mean("mock condition", cfg.mock, by_name)
    if mock is not None and mock.counts.shape[1:] != real.counts.shape[1:]:
        raise DodocoError(f"mock run {mock.path} has [L, E] = {list(mock.counts.shape[1:])} but the real run "
                          f"has {list(real.counts.shape[1:])}: use runs of the same model")
    return real, mock


def _placement(cfg: ReplayConfig, counts, N: int):
    from dodoco.ep.placements import PLACEMENTS, FitData, build_placement

    E = counts.shape[-1]
    if PLACEMENTS[cfg.placement].fitted:  # fitted on all sequences of the real run
        return build_placement(cfg.placement, E, N, FitData(counts.sum(axis=0, dtype="int64")))
    return build_placement(cfg.placement, E, N)


def build_cases(cfg: ReplayConfig, N: int) -> tuple[list[ReplayCase], dict]:
    """All cases for N ranks -> (cases, provenance); real, mock, balanced, then skew controls."""
    real, mock = pick_runs(cfg)
    counts = real.counts
    require_steps(counts.shape[0], N, cfg.batch, f"run {real.path}")
    p = _placement(cfg, counts, N)
    kw = dict(seed=cfg.seed, placement=p, layers=cfg.layers, max_steps=cfg.max_steps)
    cases = run_cases(counts, N, cfg.batch, condition=real.condition, kind="real",
                      seq_tokens=real.seq_tokens, **kw)
    if mock is not None:
        require_steps(mock.counts.shape[0], N, cfg.batch, f"run {mock.path}")
        cases += run_cases(mock.counts, N, cfg.batch, condition=mock.condition, kind="mock",
                           seq_tokens=mock.seq_tokens, **kw)
    reals = [c for c in cases if c.kind == "real"]
    cases += [ReplayCase("balanced", "balanced", c.step, c.layer, balanced_splits(c.splits.sum(1)))
              for c in reals]
    for rho in cfg.skew:
        base = reals[0].splits.sum(1)
        cases.append(ReplayCase(f"skew-{rho:g}", "skew", -1, -1, skewed_splits(base, float(rho))))
    prov = {"real": {"path": str(real.path), "condition": real.condition, "model": real.model,
                     "S": int(counts.shape[0]), "L": int(counts.shape[1]), "E": int(counts.shape[2]),
                     "seq_len": real.seq_len},
            "mock": None if mock is None else {"path": str(mock.path), "condition": mock.condition},
            "placement": p.name}
    return cases, prov
