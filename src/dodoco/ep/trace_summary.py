"""Beyond counts, for a set of runs: co-activation, cross-layer affinity, trace placements held
out, and rebalancing over time, as rows and figure data (what the report's trace sections draw).

``trace_summary(runs, TraceOptions())`` is the one entry point: runs with token traces give the
first three, every run with enough steps in arrival order gives the fourth. Byte and time figures
of the rebalancing use a nominal expert shape and nominal bandwidths (``TraceOptions``; the run
manifests do not record H or I), and say so in their notes.

Shape legend: T tokens, L MoE layers, E routed experts, K experts per token, N EP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dodoco import defaults
from dodoco.ep.affinity import affinity_rows, conditional, shuffled_counts
from dodoco.ep.coactivation import cluster_order, coactivation_rows, count_pairs, expected_pairs, lift, top_pairs
from dodoco.ep.rebalance import CostModel, arrival_steps, expert_bytes, rebalance_sweep
from dodoco.ep.trace_eval import TraceEvalOptions, evaluate_placements
from dodoco.errors import DodocoError

__all__ = ["TraceOptions", "TraceSummary", "expert_shape", "trace_summary"]

GB = 1e9


@dataclass(frozen=True, kw_only=True)
class TraceOptions:
    """ep, batch, slack, positions: the held-out placement evaluation (TraceEvalOptions).
    top_frac: co-activation concentration (share in the top pairs). rebalance_ep: N of the
    rebalancing sweep over refit_every (k) and windows (w). Nominal cost model: migrate_gbps
    (one best (k, w) per bandwidth), dispatch_gbps, and the expert shape hidden x intermediate x
    dtype_bytes: given here, else the run manifest's model details (hidden_size,
    moe_intermediate_size) when it records them, else nominal Qwen3-30B-A3B (2048 x 768)."""

    ep: tuple[int, ...] = defaults.EP
    batch: int = 1
    slack: float = 0.1
    positions: int = defaults.DECODE_POSITIONS
    top_frac: float = 0.05
    rebalance_ep: int = 8
    refit_every: tuple[int, ...] = (1, 2, 4, 8, 16)
    windows: tuple[int, ...] = (1, 2, 4, 8)
    migrate_gbps: tuple[float, ...] = (1.0, 10.0, 100.0)
    dispatch_gbps: float = 100.0
    hidden: int | None = None
    intermediate: int | None = None
    dtype_bytes: int = 2
    seed: int = 0
    n_boot: int = defaults.N_BOOT


@dataclass
class TraceSummary:
    """Rows (one dict each, labelled model and condition) and figure data per run label.

    coactivation: per layer; affinity: per layer pair; placements: per regime x EP x placement;
    rebalance: per (k, w) and "never"; rebalance_best: per migration bandwidth. heatmaps:
    label -> (lift[E, E] in cluster order, layer); transitions: label -> (p(b|a)[E, E] rows and
    columns in cluster order, layer); pairs: label -> top pairs of the heatmap's layer; one layer (and
    one layer pair) for every run: of those all runs have, the most concentrated on average; notes.
    """

    coactivation: list = field(default_factory=list)
    affinity: list = field(default_factory=list)
    placements: list = field(default_factory=list)
    rebalance: list = field(default_factory=list)
    rebalance_best: list = field(default_factory=list)
    heatmaps: dict = field(default_factory=dict)
    transitions: dict = field(default_factory=dict)
    pairs: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _label(run) -> dict:
    return {"model": run.model, "condition": run.condition}


def _structure(run, opts: TraceOptions, out: TraceSummary) -> None:
    """Co-activation and affinity rows of one traced run (its figure data: ``_figure_data``)."""
    topk, _ = run.tokens()
    E, lab = run.E, _label(run)
    pc = count_pairs(topk, E)
    out.coactivation += [{**lab, **r} for r in coactivation_rows(pc, top_frac=opts.top_frac, seed=opts.seed)]
    if pc.across is None:
        out.notes.append(f"{run.model} / {run.condition}: one MoE layer, no cross-layer affinity")
        return
    aff = affinity_rows(pc, shuffled_counts(topk, E, seed=opts.seed))
    out.affinity += [{**lab, **r} for r in aff]


def _common(rows: list[dict], runs, metric: str, span: int) -> int | None:
    """The one layer (index) every panel shows: of the layers every run has (``span`` fewer than its L),
    the one with the largest mean ``metric`` over the runs."""
    top = min((r.L - span for r in runs), default=0)
    if top < 1:
        return None
    vals = [[x[metric] for x in rows if x["layer"] == l and np.isfinite(x[metric])] for l in range(top)]
    return int(np.argmax([np.mean(v) if v else -np.inf for v in vals]))


def _figure_data(runs, out: TraceSummary) -> None:
    """Heatmaps, top pairs and transition matrices of one common layer (pair) for every traced run."""
    l = _common(out.coactivation, runs, "tv", 0)
    j = _common(out.affinity, [r for r in runs if r.L > 1], "uncertainty_coef", 1)
    for run in runs:
        key = f"{run.model} / {run.condition}"
        topk, _ = run.tokens()
        if l is not None:
            pc = count_pairs(topk[:, l : l + 1], run.E, across=False)
            exp = expected_pairs(pc.marginal[0], pc.tokens, pc.K)
            li = lift(pc.within[0], exp)
            order = cluster_order(np.nan_to_num(li, nan=0.0))
            out.heatmaps[key] = (li[np.ix_(order, order)], l)
            out.pairs[key] = top_pairs(pc.within[0], exp, m=12)
        if j is not None and run.L > 1:
            cond = conditional(count_pairs(topk[:, j : j + 2], run.E, within=False).across[0])
            rows, cols = cluster_order(cond @ cond.T), cluster_order(cond.T @ cond)
            out.transitions[key] = (cond[np.ix_(rows, cols)], j)


def _placements(run, opts: TraceOptions, out: TraceSummary) -> None:
    topk, offsets = run.tokens()
    eo = TraceEvalOptions(
        ep=opts.ep, batch=opts.batch, slack=opts.slack, positions=opts.positions, seed=opts.seed, n_boot=opts.n_boot
    )
    rows, skipped = evaluate_placements(topk, offsets, run.E, eo)
    out.placements += [{**_label(run), **r} for r in rows]
    out.notes += [f"{run.model} / {run.condition}: EP {N} {what} skipped: {why}" for N, what, why in skipped]


NOMINAL_SHAPE = (2048, 768)  # Qwen3-30B-A3B hidden and expert intermediate size


def expert_shape(run, opts: TraceOptions) -> tuple[int, int, str]:
    """(H, I, where from): the options, else the manifest's model details, else nominal."""
    if opts.hidden and opts.intermediate:
        return opts.hidden, opts.intermediate, "given"
    details = getattr(getattr(run.manifest, "model", None), "details", {}) or {}
    H, I = details.get("hidden_size"), details.get("moe_intermediate_size")
    if H and I:
        return int(H), int(I), "manifest"
    return (*NOMINAL_SHAPE, "nominal (Qwen3-30B-A3B; the manifest records no expert shape)")


def _rebalance(run, opts: TraceOptions, out: TraceSummary) -> None:
    """The (k, w) sweep of one run in arrival order, and the best (k, w) per bandwidth."""
    N = opts.rebalance_ep
    steps = arrival_steps(run.counts, N * opts.batch)
    H, I, shape_from = expert_shape(run, opts)
    details = getattr(getattr(run.manifest, "model", None), "details", {}) or {}
    ungated = shape_from == "manifest" and details.get("expert_act") == "relu2"  # Nemotron-H: up and down only
    eb = expert_bytes(H, I, opts.dtype_bytes, matrices=2 if ungated else 3)
    row_bytes = H * opts.dtype_bytes
    n = steps.shape[0]
    ws = tuple(w for w in opts.windows if 2 * w <= n) or (1,)
    ks = tuple(k for k in opts.refit_every if k < n) or (1,)
    if (ws, ks) != (tuple(opts.windows), tuple(opts.refit_every)):
        out.notes.append(
            f"{run.model} / {run.condition}: {n} steps of {N * opts.batch} units: "
            f"rebalancing swept k in {list(ks)}, w in {list(ws)} (w <= half the steps)"
        )
    runs: dict = {}  # every policy runs once; only the cost model changes with the bandwidth
    for bw in opts.migrate_gbps:
        cost = CostModel(expert_bytes=eb, row_bytes=row_bytes, migrate_bw=bw * GB, dispatch_bw=opts.dispatch_gbps * GB)
        res = rebalance_sweep(steps, N, ks, ws, cost, num_redundant=(-run.E) % N, runs=runs)
        if bw == opts.migrate_gbps[0]:
            extra = {
                "ep": N,
                "steps": int(steps.shape[0]),
                "evaluated_from": res["start"],
                "hidden": H,
                "intermediate": I,
                "shape_from": shape_from,
                "expert_bytes": eb,
                "migrate_gbps": bw,
                "dispatch_gbps": opts.dispatch_gbps,
                "seconds_label": "nominal: a cost model, not measured",
            }
            out.rebalance += [{**_label(run), **extra, **r} for r in res["rows"]]
            out.rebalance.append({**_label(run), **extra, **res["static"], "k": "never"})
            out.rebalance.append({**_label(run), **extra, "k": "oracle", "w": 0, **res["oracle"]})
        best = res["best"]
        out.rebalance_best.append(
            {
                **_label(run),
                "ep": N,
                "migrate_gbps": bw,
                "dispatch_gbps": opts.dispatch_gbps,
                "best_k": best["k"] if best["k"] is not None else "never",
                "best_w": best["w"],
                "mean_skew": best["mean_skew"],
                "total_s": best["total_s"],
                "stale_s": best["stale_s"],
                "migrate_s": best["migrate_s"],
                "seconds_label": "nominal: a cost model, not measured",
            }
        )


def trace_summary(runs, opts: TraceOptions = TraceOptions()) -> TraceSummary:
    """Every beyond-counts analysis of ``runs`` (Run objects) -> TraceSummary. A run that cannot
    give one part (no traces, too few steps, N not dividing E) gets a note instead of rows."""
    out = TraceSummary()
    for run in runs:
        key = f"{run.model} / {run.condition}"
        parts = ([_structure, _placements] if run.has_tokens else []) + [_rebalance]
        if not run.has_tokens:
            out.notes.append(
                f"{key}: no token traces (observe with --traces): co-activation, affinity and trace placements left out"
            )
        for part in parts:
            try:
                part(run, opts, out)
            except DodocoError as err:
                out.notes.append(f"{key}: {part.__name__.strip('_')} left out: {err}")
    traced = [
        r
        for r in runs
        if r.has_tokens and any(x["model"] == r.model and x["condition"] == r.condition for x in out.coactivation)
    ]
    _figure_data(traced, out)
    out.notes.append(
        f"rebalancing seconds are a nominal model (dispatch {opts.dispatch_gbps:g} GB/s, "
        f"migration {', '.join(f'{b:g}' for b in opts.migrate_gbps)} GB/s); expert "
        f"bytes = 3 x H x I x {opts.dtype_bytes} B with H, I as each row's shape_from "
        f"says"
    )
    return out
