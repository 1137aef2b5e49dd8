"""Replay settings (``ReplayConfig``) and the cases they select (no torch needed here).

``build_cases(cfg, N)`` turns one replay into its list of cases for N ranks, the same for every
dispatcher: each step x layer of the real condition and of a mock condition, a balanced control
per real case with the same per-rank rows, synthetic receiver-skew controls (``--skew``, patterns
hot-receiver / hot-pair) and the calibration grid (``grid_sizes`` x ``grid_skews`` x
``grid_patterns``). Every case carries each source rank's top-k in physical expert ids
(``dodoco.replay.routing``). docs/replay.md describes each.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step, H hidden size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dodoco import defaults
from dodoco.config import Config
from dodoco.defaults import NOMINAL_LINK_GBPS, dtype_bytes
from dodoco.errors import DodocoError, did_you_mean
from dodoco.replay.plan import ReplayCase, balanced_splits, hot_pair_splits, skewed_splits
from dodoco.replay.routing import attach_topk, block_counts, rank_topk_from_counts

__all__ = ["PATTERNS", "ReplayConfig", "build_cases", "dtype_bytes", "grid_cases", "pick_runs", "skew_case"]

#: Synthetic traffic patterns (docs/replay.md).
PATTERNS = ("hot-receiver", "hot-pair", "uniform")
#: The experts the whole-layer replay (--layer) runs (docs/replay.md)
LAYER_KERNELS = ("grouped_mm", "megatron")


#: What a gloo (CPU) dry run uses where the user gave no value: it checks the path, it times nothing
#: worth keeping, so it stays small (the GPU defaults would replay every step of every layer).
DRY_RUN = {"max_steps": 2, "iters": 3, "warmup": 1}


@dataclass(frozen=True, kw_only=True)
class ReplayConfig(Config):
    """One replay: which runs and cases, which dispatchers, how it is timed (``dodoco replay --help``)."""

    runs: tuple[str, ...] = ()
    condition: str | None = None  # the real condition; None: the only non-mock run
    mock: str | None = None  # None: the first mock-* run found; "none": no mock
    batch: int = 1
    hidden: int = defaults.HIDDEN
    dtype: str = defaults.DTYPE
    backend: str = "nccl"
    dispatcher: tuple[str, ...] = defaults.DISPATCHERS
    placement: str = defaults.PLACEMENT
    seed: int = 0
    layers: tuple[int, ...] | None = None
    max_steps: int | None = None
    skew: tuple[float, ...] = ()
    skew_patterns: tuple[str, ...] = ("hot-receiver",)
    grid_sizes: tuple[int, ...] = ()  # bytes per rank of the calibration grid
    grid_skews: tuple[float, ...] = (1.0,)
    grid_patterns: tuple[str, ...] = ("hot-receiver", "hot-pair")
    grid_experts: int = 256
    grid_topk: int = 8
    iters: int = 30
    warmup: int = 5
    buffers: int = 2  # minimum rotating buffer sets (more when sets are smaller than 2 x L2)
    overhead: bool = True  # measure each dispatcher's harness overhead on balanced cases
    sweep: bool = False
    sweep_min: int = 1 << 10
    sweep_max: int = 512 << 20
    check: bool = True
    link_gbps: float | None = None  # per-direction link bandwidth for the floor; None: nominal 450
    timeout_s: float = 300.0
    layer: bool = False  # the whole-layer replay: each rank's experts between dispatch and combine
    kernel: str = "grouped_mm"  # the experts of --layer: grouped_mm or megatron (SequentialMLP)
    expert_shape: str | None = None  # --shape NAME of the experts (dodoco ls); else --expert-width or the run's
    expert_width: int | None = None
    calibration: str | None = None  # --layer: predict each row with this calibration (and the preset) beside it
    nproc: int | None = None
    out: str | None = None
    json: str | None = None  # the summary table as JSON ('-' = stdout)
    note: str = ""

    def __post_init__(self):
        from dodoco.replay.dispatchers import expand_names

        dtype_bytes(self.dtype)
        if self.backend not in ("nccl", "gloo"):
            raise did_you_mean("backend", self.backend, ["nccl", "gloo"])
        expand_names(self.dispatcher)
        for p in (*self.skew_patterns, *self.grid_patterns):
            if p not in PATTERNS:
                raise did_you_mean("pattern", p, PATTERNS)
        for name in ("batch", "hidden", "iters", "buffers", "grid_experts", "grid_topk", "nproc", "max_steps"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise DodocoError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.timeout_s <= 0:
            raise DodocoError(f"--warmup {self.warmup} must be >= 0 and --timeout {self.timeout_s} > 0")
        if self.link_gbps is not None and self.link_gbps <= 0:
            raise DodocoError(f"--link-gbps {self.link_gbps} must be > 0 (GB/s per direction)")
        if self.kernel not in LAYER_KERNELS:
            raise did_you_mean("--kernel (experts of --layer)", self.kernel, LAYER_KERNELS)
        if self.layer and self.dtype not in ("bf16", "bfloat16"):
            raise DodocoError(f"--layer runs the experts in bf16: give --dtype bf16, not {self.dtype}")
        if self.expert_width is not None and self.expert_width < 1:
            raise DodocoError(f"--expert-width {self.expert_width} must be >= 1")
        if not self.runs and not self.grid_sizes:
            raise DodocoError("no run given: name a run directory (or a folder of runs) from `dodoco observe`")

    @property
    def dispatchers(self) -> tuple[str, ...]:
        """Registry names of the dispatchers to run ('all' and comma lists expanded), in order."""
        from dodoco.replay.dispatchers import expand_names

        return expand_names(self.dispatcher)

    @property
    def explicit_dispatchers(self) -> frozenset[str]:
        """The names given one by one (not through 'all'): a missing package is an error for these."""
        from dodoco.replay.dispatchers import expand_names

        return frozenset(n for d in self.dispatcher for n in expand_names([d]) if d.strip() != "all")

    @property
    def row_bytes(self) -> int:
        """Bytes of one H-wide row: H * bytes per element."""
        return int(self.hidden) * dtype_bytes(self.dtype)

    @property
    def link(self) -> dict:
        """The per-direction link bandwidth the floors use, and where it comes from."""
        if self.link_gbps is not None:
            return {"GBps": float(self.link_gbps), "source": "given (--link-gbps)"}
        return {"GBps": NOMINAL_LINK_GBPS, "source": "nominal: NVLink4 per direction (H100/H200)"}


def pick_runs(cfg: ReplayConfig):
    """(real Run, mock Run or None) named by cfg among the runs found under cfg.runs."""
    from dodoco.store import find_runs

    from dodoco.store.manifest import ConditionKind

    runs = find_runs(cfg.runs)
    by_name = {r.condition: r for r in runs}
    mocks = [r for r in runs if r.kind == ConditionKind.MOCK]
    if cfg.condition is None:
        real = [r for r in runs if r.kind != ConditionKind.MOCK]
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
        raise DodocoError(
            f"mock run {mock.path} has [L, E] = {list(mock.counts.shape[1:])} but the real run "
            f"has {list(real.counts.shape[1:])}: use runs of the same model"
        )
    return real, mock


def _control(
    kind: str, condition: str, pattern: str, rho, splits, slots, K: int, model: str, step: int = -1, layer: int = -1
) -> ReplayCase:
    """A synthetic case: rank-level splits -> per-expert counts -> top-k that reproduces them."""
    topk = rank_topk_from_counts(block_counts(splits, slots), K, f"{condition} case")
    case = ReplayCase(
        condition,
        kind,
        step,
        layer,
        np.asarray(splits, dtype=np.int64),
        pattern=pattern,
        rho=None if rho is None else float(rho),
        model=model,
    )
    return attach_topk(case, topk, slots, "synthesised from counts")


def skew_case(kind: str, pattern: str, rho: float, rows, slots, K: int, model: str = "") -> ReplayCase:
    """A receiver-skew control of the given pattern at target skew rho; rows[N]: rows per source rank."""
    rows = np.asarray(rows, dtype=np.int64)
    N = rows.shape[0]
    if pattern == "hot-receiver":
        splits = skewed_splits(rows, rho)
    elif pattern == "hot-pair":
        splits = hot_pair_splits(int(round(rows.mean())), N, rho, K)
    else:
        splits = balanced_splits(rows)
    cond = "balanced" if kind == "balanced" else f"{kind}-{pattern}" + (f"-{rho:g}" if kind == "skew" else "")
    return _control(kind, cond, pattern, rho, splits, slots, K, model)


def grid_cases(cfg: ReplayConfig, N: int) -> tuple[list[ReplayCase], list[str]]:
    """The calibration grid for N ranks -> (cases, skipped): sizes x skews x patterns, E and K from cfg.

    Rows per rank: the per-rank size over row bytes, rounded to whole tokens of K rows. A skew above
    N (the hot rank cannot receive more than everything) is skipped and listed.
    """
    E, K = int(cfg.grid_experts), int(cfg.grid_topk)
    if E % N:
        raise DodocoError(
            f"the grid's E={E} experts do not split evenly over N={N} ranks: set --grid-experts to a multiple of N"
        )
    slots, cases, skipped = np.full(N, E // N, dtype=np.int64), [], []
    for size in cfg.grid_sizes:
        P = max(K, int(round(size / cfg.row_bytes / K)) * K)
        for pattern in cfg.grid_patterns:
            for rho in cfg.grid_skews:
                if rho > N:
                    skipped.append(f"grid {pattern} rho={rho:g} at {size / 1e6:g} MB: rho > N={N}")
                    continue
                c = skew_case("grid", pattern, float(rho), np.full(N, P), slots, K)
                cases.append(c)
    return cases, skipped


def build_cases(cfg: ReplayConfig, N: int) -> tuple[list[ReplayCase], dict]:
    """All cases for N ranks -> (cases, provenance): real, mock, balanced, skew controls, then the grid."""
    from dodoco.replay.cases import run_routing_cases

    cases, prov = [], {"placement": cfg.placement, "part": "all", "skipped": []}
    if cfg.runs:
        real, mock = pick_runs(cfg)
        reals, prov_real = run_routing_cases(real, "real", cfg, N)
        cases += reals
        prov.update(prov_real)
        if mock is not None:
            cases += run_routing_cases(mock, "mock", cfg, N, placement_from=real)[0]
        prov["mock"] = None if mock is None else {"path": str(mock.path), "condition": mock.condition}
        for c in reals:
            b = skew_case("balanced", "uniform", None, c.splits.sum(1), c.slots, c.K, c.model)
            cases.append(dataclasses.replace(b, step=c.step, layer=c.layer))
        for pattern in cfg.skew_patterns:
            for rho in cfg.skew:
                if rho > N:
                    prov["skipped"].append(f"skew {pattern} rho={rho:g}: rho > N={N}")
                    continue
                r0 = reals[0]
                cases.append(skew_case("skew", pattern, float(rho), r0.splits.sum(1), r0.slots, r0.K, r0.model))
    grid, skipped = grid_cases(cfg, N)
    prov["skipped"] += skipped
    return cases + grid, prov
