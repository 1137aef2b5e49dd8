"""Predicted dispatch and whole-MoE-layer time at each EP degree, per dispatcher, from a run's counts.

For each N: the run's steps (N*B sequences in the seeded order, rank i holding sequences
[i*B, (i+1)*B)) give per-layer traffic matrices (``dodoco.replay.plan.run_cases``), under the
placement named (``dodoco.ep.placements``); a fitted placement (eplb) is fitted on one part of the
sequences and every step is evaluated on the other (``evaluation_plan``, the one policy; ``part``
says which).
Per case and dispatcher (``cluster.AlltoallTimer``):

- dispatch: the flat alltoall of the bytes (and the hierarchical one when N spans nodes); combine:
  the transposed bytes; balanced: the same per-rank bytes spread evenly;
- imbalance share = 1 - T(balanced) / T(dispatch): the part of dispatch time the imbalance causes;
- expert compute of the busiest rank: max over ranks of sum over its experts of f(load), f the
  grouped-GEMM table; balanced compute: every expert at the mean load, E/N experts a rank;
- layer = dispatch + compute (busiest rank) + combine; the straggler's cost in communication
  (dispatch + combine - 2 balanced) and in compute (busiest - balanced).

Each row names the terms it used: ``nvlink`` (calibrated fit, or nominal), ``nic`` (always nominal:
nothing across nodes was measured), ``gemm`` (the measured table, or nominal when scaled to
another expert shape). Values are means over steps and layers. Shape legend: S sequences, L MoE
layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.ep.steps import source_of
from dodoco.replay.plan import balanced_splits, run_cases

__all__ = ["placement_plan", "simulate_ep", "skip_reason"]


def _compute(cases, share: np.ndarray, gemm) -> tuple[float, float]:
    """(busiest-rank, balanced) expert compute in ms, means over cases; share[E, N] of one layer."""
    busy, bal = [], []
    for c in cases:
        loads = c.src.sum(0).astype(np.float64)  # [E]
        per = gemm.expert_ms(loads[:, None] * share)  # [E, N]
        busy.append(float(per.sum(0).max()))
        E, N = share.shape
        bal.append(float(gemm.expert_ms(loads.mean()) * E / N))
    return float(np.mean(busy)), float(np.mean(bal))


def placement_plan(name: str, counts, N: int, seed: int):
    """(placement for N ranks, sequence indices to evaluate, part): ``evaluation_plan``'s policy: a
    fitted placement (eplb, with ``default_redundant`` replicas) is fitted on the fit part of the
    sequences and every step comes from the held-out part; otherwise every sequence is evaluated."""
    from dodoco.ep.placements import build_placement, evaluation_plan, fit_data

    plan = evaluation_plan([name], counts.shape[0], seed)
    fit = fit_data(counts, plan.fit_idx) if plan.fit_idx is not None else None
    return build_placement(name, counts.shape[-1], N, fit), plan.eval_idx, plan.part


def _compute_cols(cases, p, gemm) -> dict:
    by_layer = {}
    for c in cases:
        by_layer.setdefault(c.layer, []).append(c)
    comp = [_compute(cs, p.layer(layer).share, gemm) for layer, cs in by_layer.items()]
    w = [len(cs) for cs in by_layer.values()]
    busy, bal = float(np.average([c[0] for c in comp], weights=w)), float(np.average([c[1] for c in comp], weights=w))
    return {"compute_ms": busy, "compute_bal_ms": bal, "compute_straggler_ms": busy - bal}


def _dispatcher_cols(timer, b, bal, d: str) -> dict:
    t, labels = timer.flat(b, d, "dispatch")
    tb, _ = timer.flat(bal, d, "dispatch")
    tc, _ = timer.flat(np.swapaxes(b, -1, -2), d, "combine")
    h = timer.hierarchical(b, d, "dispatch")
    row = {"dispatcher": d, "dispatch_ms": 1e3 * float(t.mean()), "balanced_ms": 1e3 * float(tb.mean()),
           "imbalance_share": float(np.mean(1.0 - tb / t)),
           "hier_ms": 1e3 * float(h.mean()) if h is not None else float("nan"), "combine_ms": 1e3 * float(tc.mean())}
    row["comm_straggler_ms"] = row["dispatch_ms"] + row["combine_ms"] - 2 * row["balanced_ms"]
    return {**row, **labels}


def skip_reason(N: int, B: int, S: int, E: int, placement: str, gpn: int, source=None) -> str | None:
    """Why EP N cannot be simulated (None when it can): too few sequences (in the held-out part for a
    fitted placement), more ranks than experts without replicas, or part of a node."""
    from dodoco.ep.placements import PLACEMENTS, check_placements, fit_eval_split

    fitted = PLACEMENTS[check_placements(placement)[0]].fitted
    avail = len(fit_eval_split(S, 0.5, 0)[1]) if fitted and S > 1 else S
    if source is not None and not fitted and source.n_steps(N * B):
        avail = N * B  # the source has a step (a window aggregate always has one)
    if N * B > avail:
        part = f" in the held-out half ({avail} of {S}; the other half fits {placement})" if fitted else ""
        return f"needs {N * B} sequences (EP {N} x batch {B}), the run has {avail}{part}"
    if N > E and not fitted:
        return f"EP {N} > E={E} experts: some ranks would hold none; --placement eplb adds replicas"
    if N > gpn and N % gpn:
        return f"EP {N} spans nodes of {gpn} GPUs but is not a multiple of {gpn}"
    return None


def simulate_ep(counts, ep, B: int, timer, *, row_bytes: int, dispatchers=("nccl",), gemm=None,
                placement: str = "contiguous", seed: int = 0, max_steps: int | None = 8, source=None):
    """Predict dispatch (and layer) time per EP degree and dispatcher -> (rows, skipped [(N, reason)]).

    counts[S, L, E]; timer: a ``cluster.AlltoallTimer``; row_bytes = H * bytes per element;
    gemm: a ``GemmTable`` for the expert shape (None: no compute columns). source: the run's own
    StepSource (``Run.source(seed)``): steps of placements that need no fitting come from it (a
    window aggregate is one step, split evenly over the source ranks).
    """
    counts = np.asarray(counts)
    S, L, E = counts.shape
    gpn = timer.cluster.gpus_per_node
    rows, skipped = [], []
    for N in sorted({int(n) for n in ep}):
        why = skip_reason(N, B, S, E, placement, gpn, source)
        if why:
            skipped.append((N, why))
            continue
        p, idx, part = placement_plan(placement, counts, N, seed)
        whole = source if part == "all" else None  # a fitted placement: steps of the held-out units
        cases = run_cases(whole if whole is not None else source_of(counts[idx], seed), N, B, condition="",
                          kind="real", placement=p, max_steps=max_steps)
        b = np.stack([c.splits for c in cases]).astype(np.float64) * row_bytes
        bal = np.stack([balanced_splits(c.splits.sum(1)) for c in cases]).astype(np.float64) * row_bytes
        cols = b.sum(-2)
        base = {"N": N, "nodes": -(-N // gpn), "placement": placement, "part": part, "cases": len(cases),
                "MB_per_rank": float(b.sum((-2, -1)).mean() / N / 1e6),
                "recv_skew": float((cols.max(-1) / cols.mean(-1)).mean())}
        comp = {}
        if gemm is not None:
            comp = {**_compute_cols(cases, p, gemm), "gemm": gemm.label()}
        for d in dispatchers:
            row = {**base, **_dispatcher_cols(timer, b, bal, d), **comp}
            if gemm is not None:
                row["layer_ms"] = row["dispatch_ms"] + row["compute_ms"] + row["combine_ms"]
            rows.append(row)
    return rows, skipped
