"""Predicted dispatch and whole-MoE-layer time at each EP degree, from a run's counts.

For each N: the run's steps (N*B sequences in the seeded order, rank i holding sequences
[i*B, (i+1)*B)) give per-layer traffic matrices (``dodoco.replay.plan.run_cases``). Per case:

- dispatch: ``flat_time`` of the bytes (and ``hierarchical_time`` when N spans nodes); combine:
  the same on the transposed bytes; balanced: the same per-rank bytes spread evenly;
- imbalance share = 1 - T(balanced) / T(real): the part of the dispatch time the routing's
  imbalance causes;
- expert compute of the busiest rank: max over ranks of sum over its experts of f(load), f the
  grouped-GEMM table; balanced compute: every expert at the mean load, E/N experts a rank;
- layer = dispatch + compute (busiest rank) + combine; the straggler's cost is shown in
  communication (dispatch + combine minus balanced) and in compute (busiest minus balanced).

Values are means over steps and layers. Shape legend: S sequences, L MoE layers, E routed experts,
N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.replay.plan import balanced_splits, run_cases
from dodoco.simulate.cluster import Cluster, flat_time, hierarchical_time

__all__ = ["simulate_ep"]


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


def _placement(name: str, counts, N: int):
    """The placement for N ranks; a fitted one (eplb) is fitted on all of the run's counts and gets
    the registry's default redundant replicas (``ep.placements.default_redundant``: the fewest that
    give every rank the same number of physical experts)."""
    from dodoco.ep.placements import PLACEMENTS, FitData, build_placement

    fit = FitData(counts.sum(axis=0, dtype=np.int64)) if PLACEMENTS[name].fitted else None
    return build_placement(name, counts.shape[-1], N, fit)


def simulate_ep(counts, ep, B: int, cluster: Cluster, *, row_bytes: int, gemm=None,
                placement: str = "contiguous", seed: int = 0, max_steps: int | None = 8):
    """Predict dispatch (and layer) time per EP degree -> (rows, skipped [(N, reason)]).

    counts[S, L, E]; row_bytes = H * bytes per element; gemm: a ``GemmTable`` for the expert shape
    (None: no compute columns).
    """
    from dodoco.ep.placements import PLACEMENTS
    from dodoco.ep.steps import require_steps
    from dodoco.errors import DodocoError

    counts = np.asarray(counts)
    S, L, E = counts.shape
    rows, skipped = [], []
    for N in sorted({int(n) for n in ep}):
        try:
            require_steps(S, N, B)
        except DodocoError as err:
            skipped.append((N, str(err)))
            continue
        if N > E and not PLACEMENTS[placement].fitted:
            skipped.append((N, f"EP {N} > E={E} experts: some ranks would hold none; --placement eplb "
                               "adds replicas"))
            continue
        p = _placement(placement, counts, N)
        cases = run_cases(counts, N, B, condition="", kind="real", seed=seed, placement=p,
                          max_steps=max_steps)
        b = np.stack([c.splits for c in cases]).astype(np.float64) * row_bytes
        bal = np.stack([balanced_splits(c.splits.sum(1)) for c in cases]).astype(np.float64) * row_bytes
        t, tb = flat_time(b, cluster), flat_time(bal, cluster)
        tc = flat_time(np.swapaxes(b, -1, -2), cluster)
        h = hierarchical_time(b, cluster)
        cols = b.sum(-2)
        row = {"N": N, "nodes": -(-N // cluster.gpus_per_node), "cases": len(cases),
               "MB_per_rank": float(b.sum((-2, -1)).mean() / N / 1e6),
               "recv_skew": float((cols.max(-1) / cols.mean(-1)).mean()),
               "dispatch_ms": 1e3 * float(t.mean()), "balanced_ms": 1e3 * float(tb.mean()),
               "imbalance_share": float(np.mean(1.0 - tb / t)),
               "hier_ms": 1e3 * float(h.mean()) if h is not None else float("nan"),
               "combine_ms": 1e3 * float(tc.mean())}
        row["comm_straggler_ms"] = row["dispatch_ms"] + row["combine_ms"] - 2 * row["balanced_ms"]
        if gemm is not None:
            by_layer = {}
            for c in cases:
                by_layer.setdefault(c.layer, []).append(c)
            comp = [_compute(cs, p.layer(layer).share, gemm) for layer, cs in by_layer.items()]
            w = [len(cs) for cs in by_layer.values()]
            row["compute_ms"] = float(np.average([c[0] for c in comp], weights=w))
            row["compute_bal_ms"] = float(np.average([c[1] for c in comp], weights=w))
            row["compute_straggler_ms"] = row["compute_ms"] - row["compute_bal_ms"]
            row["layer_ms"] = row["dispatch_ms"] + row["compute_ms"] + row["combine_ms"]
        rows.append(row)
    return rows, skipped
