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
- expert compute (``dodoco.compute``): each rank's tokens per local expert (``compute.cases.local_loads``)
  through the compute model of the GPU and kernel; compute_ms is the busiest rank's, the step's
  wait; compute_mean_ms the mean rank's; compute_straggler_ms = busiest - mean rank of the same step
  (>= 0 by construction: what the step waits for its busiest rank's experts beyond the average
  rank); compute_balanced_ms: a rank holding the step's mean tokens spread evenly over its experts;
- layer = dispatch + busiest rank's compute + combine; balanced layer = balanced dispatch +
  balanced compute + balanced combine.

Each row names where each term comes from: ``nvlink`` (calibrated fit and its host, or nominal),
``nic`` (always nominal: nothing across nodes was measured), ``compute_source`` (the compute
model's calibration: GPU, kernel, torch, date; another GPU's says so). Values are means over steps
and layers. Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences
per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.ep.placements import evaluated_source, plan_placement
from dodoco.replay.plan import balanced_splits, run_cases

__all__ = ["capped", "simulate_ep", "skip_reason"]


def _compute(cases, p, compute) -> dict:
    """Busiest, mean and balanced rank's expert time (ms), means over cases; compute = (model, shape)."""
    from dodoco.compute.cases import balanced_loads, local_loads

    model, shape = compute
    busy, mean, bal = [], [], []
    for c in cases:
        per = local_loads(c.src.sum(0), p.layer(c.layer))
        t = model.predict(per, shape)  # [N]
        G = max(1, round(float(np.mean([len(x) for x in per]))))
        even = balanced_loads(np.r_[int(c.src.sum()) // c.N, np.zeros(G - 1, dtype=np.int64)])  # mean tokens over G
        busy.append(float(t.max()))
        mean.append(float(t.mean()))
        bal.append(float(model.predict([even], shape)[0]))
    busy_ms, mean_ms = float(np.mean(busy)), float(np.mean(mean))
    return {
        "compute_ms": busy_ms,
        "compute_mean_ms": mean_ms,
        "compute_straggler_ms": busy_ms - mean_ms,
        "compute_balanced_ms": float(np.mean(bal)),
    }


def capped(case, p, factor: float):
    """A case under Megatron's expert capacity: each source rank sends expert e at most
    ceil(factor * its assignments / E) tokens, the rest dropped (never sent, never computed)."""
    import dataclasses

    from dodoco.ep.traffic import split_sizes, traffic_matrix

    cap = np.ceil(factor * case.src.sum(-1) / case.src.shape[-1]).astype(np.int64)  # [N]
    src = np.minimum(case.src, cap[:, None])
    return dataclasses.replace(case, src=src, splits=split_sizes(traffic_matrix(src, p.layer(case.layer))))


def _dispatcher_cols(timer, b, bal, d: str) -> dict:
    t, labels = timer.flat(b, d, "dispatch")
    tb, _ = timer.flat(bal, d, "dispatch")
    tc, _ = timer.flat(np.swapaxes(b, -1, -2), d, "combine")
    h = timer.hierarchical(b, d, "dispatch")
    row = {
        "dispatcher": d,
        "dispatch_ms": 1e3 * float(t.mean()),
        "balanced_ms": 1e3 * float(tb.mean()),
        "imbalance_share": float(np.mean(1.0 - tb / t)),
        "hier_ms": 1e3 * float(h.mean()) if h is not None else float("nan"),
        "combine_ms": 1e3 * float(tc.mean()),
    }
    row["comm_straggler_ms"] = row["dispatch_ms"] + row["combine_ms"] - 2 * row["balanced_ms"]
    tbc, _ = timer.flat(np.swapaxes(bal, -1, -2), d, "combine")
    row["balanced_combine_ms"] = 1e3 * float(tbc.mean())
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


def _bytes_and_base(cases, N: int, gpn: int, row_bytes: int, labels: dict):
    """(bytes b[cases, N, N], balanced bytes, the row's base columns) of one EP degree's cases."""
    b = np.stack([c.splits for c in cases]).astype(np.float64) * row_bytes
    bal = np.stack([balanced_splits(c.splits.sum(1)) for c in cases]).astype(np.float64) * row_bytes
    cols = b.sum(-2)
    base = {
        "N": N,
        "nodes": -(-N // gpn),
        **labels,
        "cases": len(cases),
        "MB_per_rank": float(b.sum((-2, -1)).mean() / N / 1e6),
        "recv_skew": float((cols.max(-1) / cols.mean(-1)).mean()),
    }
    return b, bal, base


def simulate_ep(
    counts,
    ep,
    B: int,
    timer,
    *,
    row_bytes: int,
    dispatchers=("nccl",),
    compute=None,
    placement: str = "contiguous",
    seed: int = 0,
    max_steps: int | None = 8,
    source=None,
    capacity_factor: float | None = None,
    placement_options: dict | None = None,
):
    """Predict dispatch (and layer) time per EP degree and dispatcher -> (rows, skipped [(N, reason)]).

    counts[S, L, E]; timer: a ``cluster.AlltoallTimer``; row_bytes = H * bytes per element;
    compute: (ComputeModel, ExpertShape) for the expert compute (None: no compute columns). source: the run's own
    StepSource (``ep.steps.run_source(run, seed)``): steps of placements that need no fitting come from it (a
    window aggregate is one step, split evenly over the source ranks). capacity_factor: drop tokens
    beyond each expert's capacity at every source rank (``capped``); rows say the share dropped.
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
        plan, steps = evaluated_source([placement], counts, seed, source=source)  # the one policy
        p, part = plan_placement(placement, N, counts, plan, **(placement_options or {})), plan.part
        cases = run_cases(steps, N, B, condition="", kind="real", placement=p, max_steps=max_steps)
        sent = sum(int(c.src.sum()) for c in cases)
        if capacity_factor is not None:
            cases = [capped(c, p, capacity_factor) for c in cases]
        b, bal, base = _bytes_and_base(cases, N, gpn, row_bytes, {"placement": placement, "part": part})
        if capacity_factor is not None:
            kept = sum(int(c.src.sum()) for c in cases)
            base.update(capacity_factor=capacity_factor, dropped_share=1.0 - kept / max(sent, 1))
        comp = {} if compute is None else _compute(cases, p, compute)
        for d in dispatchers:
            row = {**base, **_dispatcher_cols(timer, b, bal, d), **comp}
            if compute is not None:
                row["layer_ms"] = row["dispatch_ms"] + row["compute_ms"] + row["combine_ms"]
                row["balanced_layer_ms"] = row["balanced_ms"] + row["compute_balanced_ms"] + row["balanced_combine_ms"]
            rows.append(row)
    return rows, skipped
