"""The placement registry and the one fitting policy (scan, replay and simulate alike).

``PLACEMENTS`` maps a name to a ``PlacementSpec``: how to build the placement for E experts on N
ranks, whether it is fitted on data (and on what: per-unit counts or token traces), a one-line
summary (``dodoco ls``), the options it takes, and, for placements that nest across N, how rank
loads at 2N fold into loads at N (the scan's fast path). ``build_placement`` is the one way to
make a placement by name.

The policy (``evaluation_plan``): when any fitted placement is asked for, it is fitted on one
part of the units (``fit_eval_split``) and every placement of the call is evaluated on the other,
held-out part; otherwise every unit is evaluated. ``EvalPlan.part`` ("all" or "held-out") says
which, and every output states it. docs/ep.md.

Shape legend: S units (sequences), T tokens, L MoE layers, E routed experts, K experts per token,
N EP ranks, R redundant (extra) replicas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from dodoco.ep.layout import Placement, contiguous, eplb_layers, round_robin
from dodoco.ep.steps import StepSource, source_of, sum_units
from dodoco.errors import DodocoError
from dodoco.registry import Entry, Registry

__all__ = [
    "PLACEMENTS",
    "EvalPlan",
    "FitData",
    "PlacementSpec",
    "build_placement",
    "check_placements",
    "default_redundant",
    "evaluated_source",
    "evaluation_plan",
    "fit_data",
    "fit_eval_split",
    "plan_placement",
    "register_placement",
    "trace_subset",
]


@dataclass(frozen=True)
class FitData:
    """What fitted placements are fitted on: load int64 [L, E] (the fit units' counts summed);
    with token traces of the fit units, topk [T, L, K] and offsets [S_fit + 1] (else None)."""

    load: np.ndarray
    topk: np.ndarray | None = None
    offsets: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class PlacementSpec(Entry):
    """One placement: target = build(E, N, fit: FitData | None, **options) -> Placement (a callable,
    or "module:attr" imported on first use); fitted: needs data; fit_on: "none", "counts" or
    "traces"; options: the option names build takes; fold(R[..., 2N], N) -> R[..., N] when rank
    r at N holds exactly the experts of two ranks at 2N (None otherwise)."""

    fitted: bool = False
    fit_on: str = "none"
    options: tuple[str, ...] = ()
    fold: Callable[[np.ndarray, int], np.ndarray] | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.fit_on not in ("none", "counts", "traces") or self.fitted != (self.fit_on != "none"):
            raise ValueError(f"placement '{self.name}': fit_on {self.fit_on!r} does not match fitted")


def default_redundant(E: int, N: int) -> int:
    """EPLB's default redundant replicas R: the fewest with N | E + R and E + R >= N, so every rank
    holds the same number of physical experts (E=12, N=8 -> 4; E=16, N=8 -> 0; E=4, N=8 -> 4)."""
    E, N = int(E), int(N)
    return N - E if N > E else (-E) % N


def _eplb(
    E: int,
    N: int,
    fit: FitData,
    num_redundant: int | None = None,
    num_nodes: int = 1,
    num_groups: int | None = None,
    hierarchical: bool = False,
) -> Placement:
    R = default_redundant(E, N) if num_redundant is None else int(num_redundant)
    return eplb_layers(fit.load, N, R, num_nodes, num_groups, hierarchical)


#: Every placement by name (``dodoco ls`` lists them; ``--placement`` takes these names).
PLACEMENTS = Registry("placement")
register_placement = PLACEMENTS.add

register_placement(
    PlacementSpec(
        name="contiguous",
        target=lambda E, N, fit: contiguous(E, N),
        summary="expert e on rank floor(e*N/E): blocks of consecutive experts (N <= E)",
        fold=lambda R, N: R[..., 0::2] + R[..., 1::2],
    )
)
register_placement(
    PlacementSpec(
        name="round_robin",
        target=lambda E, N, fit: round_robin(E, N),
        summary="expert e on rank e mod N (N <= E)",
        fold=lambda R, N: R[..., :N] + R[..., N:],
    )
)
register_placement(
    PlacementSpec(
        name="eplb",
        target=_eplb,
        fitted=True,
        fit_on="counts",
        summary="DeepSeek-EPLB-style per layer: replicas of hot experts, balanced packing; fitted on held-out "
        "units; R = default_redundant(E, N) unless num_redundant is given",
        options=("num_redundant", "num_nodes", "num_groups", "hierarchical"),
    )
)
register_placement(
    PlacementSpec(
        name="coact",
        target="dodoco.ep.trace_placement:coact_packing",
        fitted=True,
        fit_on="traces",
        summary="co-activation-aware packing per layer: fewest distinct ranks per token (deduplicated "
        "dispatch), rank loads <= (1 + slack) x EPLB's; N | E (docs/beyond-counts.md)",
        options=("slack", "max_swaps"),
    )
)
register_placement(
    PlacementSpec(
        name="affinity",
        target="dodoco.ep.trace_placement:affinity_placement",
        fitted=True,
        fit_on="traces",
        summary="cross-layer affinity (ExFlow): a token's consecutive experts on one rank, fewest new ranks "
        "between layers, loads <= (1 + slack) x EPLB's; N | E",
        options=("slack", "sweeps", "max_swaps", "restarts", "seed"),
    )
)


def check_placements(names: Iterable[str] | str) -> list[str]:
    """Placement names -> list, each known (did-you-mean DodocoError otherwise)."""
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        PLACEMENTS.entry(name)
    return names


def build_placement(name: str, E: int, N: int, fit: FitData | None = None, **options) -> Placement:
    """The placement ``name`` for E experts on N ranks; fitted ones need ``fit`` (what they are
    fitted on: FitData, with traces when the spec fits on them). Unknown names and options and a
    missing fit raise DodocoError naming them."""
    spec = PLACEMENTS[check_placements(name)[0]]
    bad = sorted(set(options) - set(spec.options))
    if bad:
        raise DodocoError(
            f"placement '{name}' takes no option {', '.join(bad)} (it takes: {', '.join(spec.options) or 'none'})"
        )
    if spec.fitted and fit is None:
        raise DodocoError(f"placement '{name}' is fitted on data: pass fit=FitData(load[L, E])")
    if spec.fit_on == "traces" and (fit.topk is None or fit.offsets is None):
        raise DodocoError(f"placement '{name}' is fitted on token traces: observe with --traces")
    return spec.load()(int(E), int(N), fit if spec.fitted else None, **options)


def fit_eval_split(S: int, frac: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split S units: (fit_idx, eval_idx), sorted int64, disjoint, covering 0..S-1.

    The first round(frac*S) of a seeded permutation (np.random.default_rng(seed + 1)) fit, the rest
    evaluate. Raises DodocoError when either part would be empty.
    """
    S = int(S)
    n_fit = int(round(float(frac) * S))
    if not 0 < n_fit < S:
        raise DodocoError(
            f"fit fraction {frac} of S={S} units leaves an empty fit or evaluation "
            f"part: fitted placements need 0 < frac < 1 and at least 2 sequences "
            f"(a window aggregate has one)"
        )
    perm = np.random.default_rng(int(seed) + 1).permutation(S)
    return np.sort(perm[:n_fit]), np.sort(perm[n_fit:])


@dataclass(frozen=True)
class EvalPlan:
    """Which units fit and which evaluate: fit_idx int64 [S_fit] or None (nothing fitted),
    eval_idx int64 [S_eval], part "all" or "held-out"."""

    fit_idx: np.ndarray | None
    eval_idx: np.ndarray
    part: str


def evaluation_plan(names, S: int, seed: int = 0, frac: float = 0.5) -> EvalPlan:
    """The one policy: any fitted placement among ``names`` -> fitted on fit_eval_split's fit part,
    every placement evaluated on the held-out part; none fitted -> every unit evaluated."""
    if not any(PLACEMENTS[n].fitted for n in check_placements(names)):
        return EvalPlan(None, np.arange(int(S)), "all")
    fit_idx, eval_idx = fit_eval_split(S, frac, seed)
    return EvalPlan(fit_idx, eval_idx, "held-out")


def trace_subset(topk, offsets, idx) -> tuple[np.ndarray, np.ndarray]:
    """Token traces of units idx (in idx order): topk[T, L, K], offsets[S+1] -> (topk[T', L, K],
    offsets[len(idx) + 1])."""
    offsets, idx = np.asarray(offsets, dtype=np.int64), np.asarray(idx, dtype=np.int64)
    lens = offsets[idx + 1] - offsets[idx]
    rows = np.repeat(offsets[idx] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(int(lens.sum()))
    return np.asarray(topk)[rows], np.concatenate([[0], np.cumsum(lens)])


def fit_data(counts, idx, tokens=None) -> FitData:
    """FitData of units idx: load = counts[idx] summed (int64 [L, E]); with tokens = (topk[T, L, K],
    offsets[S+1]) of all units, the traces of units idx (``trace_subset``)."""
    load = sum_units(counts, idx)
    return FitData(load) if tokens is None else FitData(load, *trace_subset(*tokens, idx))


def evaluated_source(names, counts, seed: int = 0, frac: float = 0.5, source: StepSource | None = None):
    """The one policy as steps -> (EvalPlan, StepSource of the evaluated units): every unit (``source``,
    the run's own, e.g. ``ep.steps.run_source``, whose window aggregate is one step; default
    source_of(counts, seed)) or, when a placement among ``names`` is fitted, the held-out units of
    counts[S, L, E] in their seeded order."""
    plan = evaluation_plan(names, counts.shape[0], seed, frac)
    if plan.fit_idx is None:
        return plan, source if source is not None else source_of(counts, seed)
    return plan, source_of(counts, seed, idx=plan.eval_idx)


def plan_placement(name: str, N: int, counts, plan: EvalPlan, tokens=None, **options) -> Placement:
    """The placement ``name`` for N ranks under ``plan``: a fitted one fitted on the plan's fit units of
    counts[S, L, E] (and their traces, tokens = (topk[T, L, K], offsets[S+1])); ``options`` of the
    placement (e.g. num_redundant for eplb)."""
    fit = fit_data(counts, plan.fit_idx, tokens) if PLACEMENTS[check_placements(name)[0]].fitted else None
    return build_placement(name, counts.shape[-1], N, fit, **options)
