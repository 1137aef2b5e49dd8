"""Rebalancing over time: EPLB refitted every k steps on the last w, on data in arrival order.

Steps are formed from consecutive units in arrival order (the order they were recorded: forward
passes of an import, sequences of an observed run), ``arrival_steps``. Policy (k, w): the first
fit is at step w on steps [0, w); then a refit every k steps, each on the w steps before it; the
placement fitted at step t serves steps t .. t+k-1. Every policy of a sweep is evaluated on the
same steps [max w, n), so they compare like with like. Per step and layer DODOCO records the
receiver skew (max/mean rank load) and the excess rows of the busiest rank (max - mean); per
refit, the experts it moves: per layer, the new placement's ranks are first relabelled onto the old
ones with the largest overlap (``linear_assignment``) and, among relabellings that keep that much
in place, one whose busiest receiving rank takes in the fewest replicas (a bottleneck search, so
the value does not depend on how ties are broken); then every replica a rank must newly hold is one
expert moved (x ``expert_bytes`` = 3 H I b for a SwiGLU expert).

Cost model (nominal, not measured): a step costs its excess rows x row bytes / dispatch bandwidth
(the busiest rank receives them on top of a balanced share); a refit migrates layer after layer,
each layer costing its busiest receiving rank's incoming expert bytes / migration bandwidth (ranks
receive in parallel; migration not overlapped with compute). The best (k, w) minimises the sum over
the evaluated steps; ties go to fewer refits, then to "never" (a policy that refits nowhere in the
evaluated steps is the same as never refitting, and says so), then to the larger w and smaller k.
Synthetic controls with known answers: ``rotating_hotspot``, ``burst``.

Shape legend: S units, L MoE layers, E routed experts, N EP ranks, n steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dodoco.ep.assignment import linear_assignment
from dodoco.ep.layout import Placement, eplb_layers
from dodoco.ep.loads import rank_loads
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import max_mean

__all__ = [
    "CostModel",
    "arrival_steps",
    "burst",
    "expert_bytes",
    "moved_experts",
    "policy_run",
    "rebalance_sweep",
    "rotating_hotspot",
]


def expert_bytes(hidden: int, intermediate: int, dtype_bytes: int = 2, matrices: int = 3) -> int:
    """Weight bytes of one expert: matrices x H x I x bytes (3 for a SwiGLU expert: gate, up,
    down; 2 for an ungated ReLU^2 one). Qwen3-30B-A3B (H=2048, I=768, bf16): 9,437,184 bytes."""
    if min(hidden, intermediate, dtype_bytes, matrices) < 1:
        raise DodocoError(
            f"expert shape must be positive, got hidden={hidden}, intermediate="
            f"{intermediate}, dtype_bytes={dtype_bytes}"
        )
    return int(matrices) * int(hidden) * int(intermediate) * int(dtype_bytes)


@dataclass(frozen=True, kw_only=True)
class CostModel:
    """Nominal time model: expert_bytes (one expert's weights), row_bytes (one dispatched token
    row, H x bytes), migrate_bw and dispatch_bw in bytes/s (inf: free)."""

    expert_bytes: float
    row_bytes: float
    migrate_bw: float
    dispatch_bw: float

    def __post_init__(self):
        if min(self.expert_bytes, self.row_bytes) < 0 or min(self.migrate_bw, self.dispatch_bw) <= 0:
            raise DodocoError(f"cost model needs bytes >= 0 and bandwidths > 0, got {self}")


def arrival_steps(counts, rows_per_step: int) -> np.ndarray:
    """Steps of consecutive units in arrival order: counts[S, L, E] -> int64 [S // P, L, E]."""
    from dodoco.ep.steps import source_of

    counts = np.asarray(counts)
    P = int(rows_per_step)
    if counts.ndim != 3 or P < 1 or counts.shape[0] < P:
        raise DodocoError(
            f"arrival-order steps of {P} units need counts [S, L, E] with S >= {P}, got shape {counts.shape}"
        )
    return source_of(counts, order=np.arange(counts.shape[0])).steps(P).astype(np.int64)


def _relabel(old, new) -> np.ndarray:
    """Columns of new[E, N] for each old rank: the largest overlap sum_e min(old, new) kept in place and,
    among those, the smallest busiest incoming (max over old ranks r of the replicas new[:, col[r]]
    holds that old[:, r] does not)."""
    overlap = np.minimum(old[:, :, None], new[:, None, :]).sum(axis=0)  # [old r, new r']
    incoming = new.sum(axis=0)[None, :] - overlap
    col = linear_assignment(-overlap)  # old rank r <- new rank col[r]
    rows = np.arange(overlap.shape[0])
    best, peak = overlap[rows, col].sum(), incoming[rows, col].max()
    if peak <= incoming.min(axis=0).max():  # the lower bound: some old rank must take each new rank
        return col
    big = float(overlap.sum() + 1)
    levels = np.unique(incoming[incoming < peak])
    lo, hi = 0, len(levels)  # find the smallest level whose restriction still keeps ``best`` in place
    while lo < hi:
        mid = (lo + hi) // 2
        c = linear_assignment(np.where(incoming <= levels[mid], -overlap, big))
        if overlap[rows, c].sum() == best and incoming[rows, c].max() <= levels[mid]:
            hi, col = mid, c
        else:
            lo = mid + 1
    return col


def moved_experts(old, new) -> tuple[np.ndarray, np.ndarray]:
    """Experts a refit moves: copies old[L, E, N], new[L, E, N] -> (new relabelled [L, E, N],
    incoming int64 [L, N]: replicas rank r must newly hold). Per layer, new rank labels are
    permuted to maximise sum_r sum_e min(old[e, r], new[e, r]) (the overlap kept in place), ties
    going to the smallest busiest incoming (``_relabel``)."""
    old, new = np.asarray(old), np.asarray(new)
    out = np.empty_like(new)
    for l in range(new.shape[0]):
        out[l] = new[l][:, _relabel(old[l], new[l])]
    return out, np.maximum(out - old, 0).sum(axis=1)


def _fit(steps, t: int, w: int, N: int, R: int) -> np.ndarray:
    return eplb_layers(steps[t - w : t].sum(axis=0), N, R).copies


def _skew_excess(step, copies) -> tuple[np.ndarray, np.ndarray]:
    """Receiver skew and busiest-rank excess rows (max - mean) of step[L, E] on copies[L, E, N]."""
    replicas = copies.sum(axis=-1)
    p = Placement("eplb", copies.shape[-1], copies / replicas[..., None], replicas, copies.sum(axis=-2))
    R = rank_loads(np.asarray(step, dtype=np.float64), p)  # [L, N]
    return max_mean(R), R.max(axis=-1) - R.mean(axis=-1)


def policy_run(steps, N: int, k: int, w: int, start: int, num_redundant: int = 0) -> dict:
    """One policy over steps[n, L, E] -> {"skew": [n - start, L], "excess": [n - start, L] rows,
    "refits": [(step, incoming[L, N])]} for the steps [start, n) (start >= w). Refits happen at
    w, w + k, ...; the first fit is the deployment (no migration counted)."""
    steps = np.asarray(steps)
    n = steps.shape[0]
    if not (1 <= w <= start < n) or k < 1:
        raise DodocoError(f"policy k={k}, w={w} needs 1 <= w <= first evaluated step {start} < steps {n}, and k >= 1")
    copies = _fit(steps, w, w, N, num_redundant)
    refits, skew, excess = [], [], []
    for t in range(w, n):
        if t > w and (t - w) % k == 0:
            copies, incoming = moved_experts(copies, _fit(steps, t, w, N, num_redundant))
            refits.append((t, incoming))
        if t >= start:
            sk, ex = _skew_excess(steps[t], copies)
            skew.append(sk)
            excess.append(ex)
    return {"skew": np.array(skew), "excess": np.array(excess), "refits": refits}


def _costs(run: dict, cost: CostModel | None) -> dict:
    moved = [inc.sum() for _, inc in run["refits"]]
    peak = [inc.max(axis=1).sum() for _, inc in run["refits"]]  # layer by layer: its busiest receiving rank
    row = {
        "refits": len(moved),
        "mean_skew": float(np.nanmean(run["skew"])),
        "p95_skew": float(np.nanpercentile(np.nanmean(run["skew"], axis=1), 95)),
        "moved_per_refit": float(np.mean(moved)) if moved else 0.0,
        "moved_total": float(np.sum(moved)),
    }
    if cost is not None:
        row["bytes_per_refit"] = row["moved_per_refit"] * cost.expert_bytes
        row["stale_s"] = float(run["excess"].sum() * cost.row_bytes / cost.dispatch_bw)
        row["migrate_s"] = float(np.sum(peak) * cost.expert_bytes / cost.migrate_bw)
        row["total_s"] = row["stale_s"] + row["migrate_s"]
    return row


def rebalance_sweep(
    steps,
    N: int,
    ks=(1, 2, 4, 8, 16),
    ws=(1, 2, 4, 8),
    cost: CostModel | None = None,
    num_redundant: int = 0,
    runs: dict | None = None,
) -> dict:
    """Sweep refit interval k and window w over steps[n, L, E] (arrival order) -> {"rows": one
    dict per (k, w) (see _costs; ``same_as`` "never" where it refits nowhere in the evaluated steps
    and its first fit is never's), "start": first evaluated step, "static": one fit on the first
    max(ws) steps, never refitted (k None), "best": of static and the rows, the least total cost
    (with ``cost``; ties: fewer refits, then static, then larger w, then smaller k), "oracle": each
    step fitted on itself (the in-sample lower bound on skew)}. ``runs``: a dict shared by sweeps
    of the same steps under other cost models (the policies are run once)."""
    steps = np.asarray(steps)
    start = max(int(w) for w in ws)
    if steps.shape[0] <= start:
        raise DodocoError(
            f"a rebalancing sweep with windows up to {start} steps needs more than "
            f"{start} steps, have {steps.shape[0]}: lower --windows or give more data"
        )
    runs = {} if runs is None else runs

    def run(k: int, w: int) -> dict:
        if (k, w, start) not in runs:
            runs[(k, w, start)] = policy_run(steps, N, k, w, start, num_redundant)
        return runs[(k, w, start)]

    rows = [{"k": int(k), "w": int(w), **_costs(run(int(k), int(w)), cost)} for k in ks for w in ws]
    for r in rows:
        if r["refits"] == 0 and r["w"] == start:
            r["same_as"] = "never"
    static = {"k": None, "w": start, **_costs(run(steps.shape[0], start), cost)}
    if ("oracle", start) not in runs:
        runs[("oracle", start)] = {
            "mean_skew": float(
                np.nanmean(
                    [
                        _skew_excess(steps[t], eplb_layers(steps[t], N, num_redundant).copies)[0]
                        for t in range(start, steps.shape[0])
                    ]
                )
            )
        }
    best = (
        min(
            [static] + rows,
            key=lambda r: (round(r["total_s"], 12), r["refits"], r["k"] is not None, -r["w"], r["k"] or 0),
        )
        if cost
        else None
    )
    return {"rows": rows, "start": start, "best": best, "static": static, "oracle": runs[("oracle", start)]}


def _zipf(E: int, zipf: float, seed: int) -> np.ndarray:
    p = 1.0 / (1.0 + np.arange(E)) ** float(zipf)
    return (p / p.sum())[np.random.default_rng(seed).permutation(E)]


def rotating_hotspot(
    n_steps: int, L: int, E: int, tokens: int, period: int, hot_share: float, zipf: float = 0.5, seed: int = 0
) -> np.ndarray:
    """Synthetic steps int64 [n_steps, L, E]: a fixed Zipf(zipf) base load plus ``hot_share`` of the
    tokens on one hot expert that moves to the next expert every ``period`` steps (expert
    (t // period) * 7 mod E, the same in every layer). Deterministic (rounded), no noise."""
    base = _zipf(E, zipf, seed)
    out = np.empty((n_steps, L, E), dtype=np.int64)
    for t in range(n_steps):
        p = base * (1 - hot_share)
        p[(t // period) * 7 % E] += hot_share
        out[t] = np.rint(tokens * p)
    return out


def burst(
    n_steps: int,
    L: int,
    E: int,
    tokens: int,
    at: int,
    length: int,
    expert: int,
    share: float,
    zipf: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Synthetic steps int64 [n_steps, L, E]: a fixed Zipf base load; during steps [at, at+length)
    ``share`` of the tokens go to ``expert`` (every layer). Deterministic, no noise."""
    base = _zipf(E, zipf, seed)
    out = np.broadcast_to(np.rint(tokens * base), (n_steps, L, E)).astype(np.int64)
    hot = base * (1 - share)
    hot[expert] += share
    out[at : at + length] = np.rint(tokens * hot)
    return out
