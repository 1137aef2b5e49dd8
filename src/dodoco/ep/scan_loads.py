"""The EP scan's per-step values: per-expert metrics, rank loads (fast paths) and placement metrics.

Per step and MoE layer:

- ``gini``, ``max_mean``: per-expert imbalance of the step's summed counts (``expert_metrics``);
- ``receiver_skew``: max_r R_r / mean_r R_r of the rank loads R = c @ share;
- ``max_mean_phys``: per-physical-expert max/mean, only for placements with replicas;
- ``send_max_mean``, ``recv_max_mean``: max/mean over ranks of the assignments each rank sends /
  receives over links (``traffic.send_recv_local``: the diagonal s[i, i] excluded), N >= 2 only.

Speed: rank loads of every N sharing a product N*B fold down from the largest N for nested
placements (``PlacementSpec.fold``); up to ``FOLD_MAX_N`` ranks they come from per-unit loads at
the largest such N (one pass over the units serves every B); own-rank loads s[i, i] come from
those per-unit loads or from a gather of each rank's experts. docs/ep.md.

Shape legend: n steps, U units per block, L MoE layers, E routed experts, N EP ranks, B units per
rank per step, P = N*B units per step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dodoco.ep.loads import RankMap, replica_max_mean
from dodoco.ep.placements import PLACEMENTS
from dodoco.ep.steps import StepSource
from dodoco.ep.traffic import send_recv_local
from dodoco.metrics.imbalance import gini, max_mean

__all__ = ["FOLD_MAX_N", "expert_metrics", "own_load", "step_loads", "step_metrics", "unit_loads"]

#: Up to this N, nested placements take rank loads from per-unit loads at the largest such N
#: (one pass over the units, then sums and folds); above it, own-rank loads come from a gather
#: of each rank's E/N experts (a 1/N pass).
FOLD_MAX_N = 16
_CHUNK = 1 << 16  # elements per chunk of expert_metrics (fits the L2 cache)


def _fold_to(name: str, R: np.ndarray, N: int) -> np.ndarray | None:
    """Fold loads R[..., N0] down to N ranks (N0 / N a power of two), else None."""
    fold = PLACEMENTS[name].fold
    while R.shape[-1] > N and R.shape[-1] % 2 == 0:
        R = fold(R, R.shape[-1] // 2)
    return R if R.shape[-1] == N else None


def unit_loads(src: StepSource, pairs, maps: dict, names) -> dict:
    """{name: StepSource of rank loads at N0 per unit}: N0 = largest scanned N <= FOLD_MAX_N, for
    nested placements of an observed source (a window has no units to sum).

    Loads are linear, so the loads of a level-G row are the sums of its units' loads: one pass
    over the units serves every B, every product and (by folding) every N = N0 / 2^k."""
    small = [n for n, _ in pairs if 2 <= n <= FOLD_MAX_N]
    out = {}
    if src.source_split != "observed" or not small:
        return out
    for name in names:
        if PLACEMENTS[name].fold is not None and (name, max(small)) in maps:
            out[name] = src.like(maps[(name, max(small))].loads(src.level(1), dtype=src.dtype(1)))
    return out


def step_loads(steps, P: int, Ns, maps: dict, names, units: dict) -> dict:
    """{(name, N): R[n, L, N]} rank loads of one product's steps, folded down N where nested."""
    out: dict = {}
    for name in names:
        R, prev, fold = None, None, PLACEMENTS[name].fold
        for N in sorted(Ns, reverse=True):
            if (name, N) not in maps:
                continue
            base = units[name].steps(P) if name in units else None
            folded = _fold_to(name, base, N) if base is not None else None
            if folded is not None:
                R = folded
            elif fold is not None and prev == 2 * N:
                R = fold(R, N)
            else:
                R = maps[(name, N)].loads(steps, dtype=steps.dtype)
            out[(name, N)], prev = R, N
    return out


def own_load(src: StepSource, N: int, B: int, name: str, rmap: RankMap, units: dict) -> np.ndarray:
    """own[n, N, L]: the load of each step's rank i on rank i itself (s[i, i]) for (N, B)."""
    R = _fold_to(name, units[name].level(B), N) if name in units else None
    if R is None:  # sum each rank's own experts only
        return rmap.local(src.ranks(N, B), True, src.dtype(B))
    v = src.rank_rows(N, B, R)  # [n, N src, L, N dst]
    return np.swapaxes(np.diagonal(v, axis1=1, axis2=3), 1, 2)


def step_metrics(local, totals, steps, rmap: RankMap, R=None) -> dict[str, np.ndarray]:
    """Placement metrics per step and layer -> {metric: float64 [n, L]}.

    local[n, N, L]: assignments of rank i's tokens to experts on rank i (s[i, i], RankMap.local);
    totals[n, N, L]: all assignments of rank i's tokens; steps[n, L, E]: the step's counts;
    R[n, L, N]: the rank loads rmap.loads(steps) if already known.
    """
    if R is None:
        R = rmap.loads(steps, dtype=steps.dtype if steps.dtype.kind == "u" else None)
    out = {"receiver_skew": max_mean(R)}
    if (rmap.placement.replicas > 1).any():
        out["max_mean_phys"] = replica_max_mean(steps, rmap.placement)
    if rmap.N >= 2 and local is not None:
        send, recv = send_recv_local(np.swapaxes(totals, 1, 2), R, np.swapaxes(local, 1, 2))
        out["send_max_mean"] = max_mean(send)
        out["recv_max_mean"] = max_mean(recv)
    return out


def expert_metrics(steps, threads: int = 2) -> dict[str, np.ndarray]:
    """Per-expert gini and max_mean of steps[..., E] -> {metric: float64 [...]}.

    The metrics.imbalance functions applied to cache-sized row chunks on ``threads`` threads
    (numpy releases the GIL): the same values, several times faster than on the whole array.
    """
    x = np.asarray(steps)
    rows = x.reshape(-1, x.shape[-1])
    out = {"gini": np.empty(rows.shape[0]), "max_mean": np.empty(rows.shape[0])}
    step = max(1, _CHUNK // rows.shape[1])

    def work(a: int) -> None:
        out["gini"][a : a + step] = gini(rows[a : a + step])
        out["max_mean"][a : a + step] = max_mean(rows[a : a + step])

    starts = range(0, rows.shape[0], step)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(work, starts))
    else:
        for a in starts:
            work(a)
    return {k: v.reshape(x.shape[:-1]) for k, v in out.items()}
