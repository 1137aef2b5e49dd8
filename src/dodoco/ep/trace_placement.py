"""Placements fitted on token traces: co-activation-aware packing and cross-layer affinity.

Both place every expert of a layer on one rank, E/N experts per rank (N must divide E), under a
load-balance bound: no rank may carry more than (1 + slack) x the largest rank load of EPLB fitted
on the same data (so they stay within ``slack`` of EPLB's balance). Both start from that EPLB
placement and improve it by pairwise swaps of experts between ranks (``swap_search``), then keep
the candidate with the best exact objective on the fit tokens (never worse than the start).

- ``coact_packing`` minimises deduplicated dispatch: the distinct ranks a token's K experts
  occupy (DeepEP sends one copy per distinct destination rank). The swaps maximise the tokens
  whose expert pairs share a rank (the pair counts of ``count_pairs``), a surrogate that is exact
  for K = 2; candidates are compared on the exact distinct-rank count.
- ``affinity_placement`` (the ExFlow idea) keeps a token's consecutive experts on the same rank:
  it minimises the new ranks a token must reach in layer l+1 that held none of its layer-l
  experts, sum_t |D_{l+1}(t) minus D_l(t)| (D_l(t): ranks of its layer-l experts). Layer 0 is
  EPLB's; each next layer maximises the transitions a -> b with a and b on one rank, then sweeps
  refit each layer against both neighbours.

Shape legend: T tokens, L MoE layers, E routed experts, K experts per token, N EP ranks.
"""

from __future__ import annotations

import numpy as np

from dodoco.ep.assignment import linear_assignment
from dodoco.ep.coactivation import count_pairs
from dodoco.ep.layout import Placement, eplb_layers
from dodoco.ep.loads import rank_loads
from dodoco.ep.traffic import distinct_destinations
from dodoco.errors import DodocoError

__all__ = ["affinity_placement", "coact_packing", "distinct_ranks", "layer_bound", "rank_masks", "swap_search"]

MAX_RANKS = 64  # rank sets are 64-bit masks
_POW2 = np.left_shift(np.uint64(1), np.arange(MAX_RANKS, dtype=np.uint64))


def rank_masks(dst, N: int) -> np.ndarray:
    """Set of destination ranks of each token as a bit mask: dst[..., K] -> uint64 [...]."""
    if N > MAX_RANKS:
        raise DodocoError(f"trace placements handle at most {MAX_RANKS} EP ranks, got N={N}")
    bits = _POW2[np.asarray(dst)]
    out = bits[..., 0].copy()
    for k in range(1, bits.shape[-1]):  # a loop over K: reduce over a short last axis is slow
        out |= bits[..., k]
    return out


def distinct_ranks(topk_l, rank, N: int) -> int:
    """Sum over tokens of the distinct ranks their experts occupy (deduplicated dispatch rows,
    ``traffic.distinct_destinations``): topk_l[T, K], rank[E] -> int."""
    return int(distinct_destinations(np.asarray(rank)[topk_l])[1].sum())


def layer_bound(load, N: int, slack: float) -> tuple[np.ndarray, np.ndarray]:
    """EPLB start and load bound per layer: load[L, E] -> (rank[L, E], cap[L]).

    cap = (1 + slack) x the largest rank load of EPLB (no redundant experts) on ``load``.
    """
    load = np.asarray(load, dtype=np.float64)
    E = load.shape[1]
    if N < 1 or E % N:
        raise DodocoError(f"trace placements put E/N experts on each rank: N={N} must divide E={E}")
    if slack < 0:
        raise DodocoError(f"load-balance slack must be >= 0, got {slack}")
    p = eplb_layers(load, N)
    return p.rank_of, (1.0 + slack) * rank_loads(load, p).max(axis=1) + 1e-9


def swap_search(rank, load, cap: float, W=None, S=None, max_swaps: int | None = None) -> np.ndarray:
    """Best-improvement pairwise swaps: rank[E] -> rank[E] (same experts per rank).

    Objective: sum over pairs a < b on one rank of W[a, b] (symmetric, zero diagonal) plus sum_e
    S[e, rank_e]. Each step swaps the two experts on different ranks whose exchange raises the
    objective most while both ranks' loads (load[E] summed) stay <= cap; stops when no swap
    gains (or after max_swaps, default 4E). The objective rises strictly, so it terminates.
    """
    rank = np.array(rank, dtype=np.int64)
    load = np.asarray(load, dtype=np.float64)
    E = rank.size
    N = int(rank.max()) + 1 if S is None else np.shape(S)[1]
    W = np.zeros((E, E)) if W is None else np.asarray(W, dtype=np.float64)
    S = np.zeros((E, N)) if S is None else np.asarray(S, dtype=np.float64)
    onehot = np.zeros((E, N))
    onehot[np.arange(E), rank] = 1.0
    M = W @ onehot  # M[a, r] = sum of W[a, c] over c on rank r
    R = load @ onehot
    d = load[None, :] - load[:, None]  # load_b - load_a
    for _ in range(4 * E if max_swaps is None else int(max_swaps)):
        Mr, Sr = M[:, rank], S[:, rank]  # [a, b]: a's value on b's rank
        own_m, own_s = M[np.arange(E), rank], S[np.arange(E), rank]
        gain = (Mr - own_m[:, None]) + (Mr.T - own_m[None, :]) - 2 * W
        gain += (Sr - own_s[:, None]) + (Sr.T - own_s[None, :])
        ok = (rank[:, None] != rank[None, :]) & (R[rank][:, None] + d <= cap) & (R[rank][None, :] - d <= cap)
        gain = np.where(ok, gain, -np.inf)
        a, b = divmod(int(np.argmax(gain)), E)
        if not gain[a, b] > 1e-9:
            break
        ra, rb = rank[a], rank[b]
        M[:, ra] += W[:, b] - W[:, a]
        M[:, rb] += W[:, a] - W[:, b]
        R[ra] += load[b] - load[a]
        R[rb] += load[a] - load[b]
        rank[a], rank[b] = rb, ra
    return rank


def _greedy(load, cap: float, N: int, W=None, S=None) -> np.ndarray | None:
    """Constructive start: experts by load (descending) each to the rank with a free slot and room
    under cap that gains most (W to experts already there, plus S); None if one fits nowhere."""
    E = load.size
    slots, R = np.full(N, E // N), np.zeros(N)
    onehot = np.zeros((E, N))
    rank = np.full(E, -1, dtype=np.int64)
    for e in np.argsort(-load, kind="stable"):
        gain = (W[e] @ onehot if W is not None else np.zeros(N)) + (S[e] if S is not None else 0)
        ok = (slots > 0) & (R + load[e] <= cap)
        if not ok.any():
            return None
        r = int(np.argmax(np.where(ok, gain - 1e-12 * R, -np.inf)))
        rank[e], slots[r], R[r], onehot[e, r] = r, slots[r] - 1, R[r] + load[e], 1.0
    return rank


def _relabel(rank, S) -> np.ndarray:
    """The relabeling of rank's groups that maximises the linear objective S[E, N] (same groups,
    so the same loads). (The best assignment of experts to the E/N slots of each rank, an E x E
    assignment, found nothing better on the tests or the zoo and cost 4x the time.)"""
    onehot = np.eye(S.shape[1])[rank]
    return linear_assignment(-(onehot.T @ S))[rank]  # group r -> its best label


def _layered(name: str, ranks: np.ndarray, N: int) -> Placement:
    """Per-layer one-hot placement from rank[L, E]."""
    L, E = ranks.shape
    share = np.zeros((L, E, N))
    share[np.arange(L)[:, None], np.arange(E)[None, :], ranks] = 1.0
    slots = np.stack([np.bincount(r, minlength=N) for r in ranks]).astype(np.int64)
    return Placement(name, N, share, np.ones((L, E), dtype=np.int64), slots)


def _fit_arrays(E: int, fit) -> tuple[np.ndarray, np.ndarray]:
    """(load[L, E], topk[T, L, K]) of fit data (an object with .load and .topk)."""
    topk = getattr(fit, "topk", None)
    if topk is None:
        raise DodocoError(
            "this placement is fitted on token traces: observe with --traces (or "
            "import a token-level dump) and fit on its tokens"
        )
    load = np.asarray(fit.load, dtype=np.float64)
    if load.ndim != 2 or load.shape[1] != E or np.shape(topk)[1] != load.shape[0]:
        raise DodocoError(
            f"fit data must be load[L, E] with E={E} and topk[T, L, K] of the same "
            f"L, got load {load.shape} and topk {np.shape(topk)}"
        )
    return load, np.asarray(topk)


def coact_packing(E: int, N: int, fit, slack: float = 0.1, max_swaps: int | None = None) -> Placement:
    """Co-activation-aware packing fitted on fit.topk[T, L, K] and fit.load[L, E] -> Placement
    share[L, E, N] (one rank per expert, E/N per rank, rank loads <= (1 + slack) x EPLB's max)."""
    load, topk = _fit_arrays(E, fit)
    start, cap = layer_bound(load, N, slack)
    W = count_pairs(topk, E, within=True, across=False).within.astype(np.float64)
    out = start.copy()
    for l in range(load.shape[0]):
        w = W[l] - np.diag(np.diag(W[l]))
        cands = [start[l], swap_search(start[l], load[l], cap[l], W=w, max_swaps=max_swaps)]
        g = _greedy(load[l], cap[l], N, W=w)
        if g is not None:
            cands.append(swap_search(g, load[l], cap[l], W=w, max_swaps=max_swaps))
        cost = [distinct_ranks(topk[:, l], r, N) for r in cands]
        out[l] = cands[int(np.argmin(cost))]
    return _layered("coact", out, N)


def _affinity_cost(masks: list, l: int, m_l) -> int:
    """New ranks entering layer l and layer l+1 (the two terms layer l's placement affects) with
    layer l's masks m_l[T] and the other layers' masks[j][T]."""
    cost = int(np.bitwise_count(m_l & ~masks[l - 1]).sum()) if l > 0 else 0
    if l + 1 < len(masks):
        cost += int(np.bitwise_count(masks[l + 1] & ~m_l).sum())
    return cost


def _total_changes(topk, ranks, N: int) -> int:
    """sum over tokens and l >= 1 of the ranks of layer l not among layer l-1's."""
    masks = [rank_masks(ranks[l][topk[:, l]], N) for l in range(topk.shape[1])]
    return sum(int(np.bitwise_count(masks[l] & ~masks[l - 1]).sum()) for l in range(1, len(masks)))


def _refit_layer(l: int, ranks, masks, left: bool, right: bool, J, topk, load, cap, N, max_swaps) -> None:
    """Refit layer l in place (ranks[l] and its masks[l]) against its left and/or right
    neighbour; keep the candidate of least exact cost."""
    E = load.shape[1]
    S = np.zeros((E, N))
    if left and l > 0:
        S += J[l - 1].T @ np.eye(N)[ranks[l - 1]]
    if right and l < len(ranks) - 1:
        S += J[l] @ np.eye(N)[ranks[l + 1]]
    best, best_cost = ranks[l].copy(), _affinity_cost(masks, l, masks[l])
    inits = [ranks[l], _greedy(load[l], cap[l], N, S=S), _relabel(ranks[l], S)]
    for init in inits:
        if init is None:
            continue
        cand = swap_search(init, load[l], cap[l], S=S, max_swaps=max_swaps)
        c = _affinity_cost(masks, l, rank_masks(cand[topk[:, l]], N))
        if c < best_cost:
            best, best_cost = cand, c
    ranks[l], masks[l] = best, rank_masks(best[topk[:, l]], N)


def affinity_placement(
    E: int,
    N: int,
    fit,
    slack: float = 0.1,
    sweeps: int = 2,
    max_swaps: int | None = None,
    restarts: int = 4,
    seed: int = 0,
) -> Placement:
    """Cross-layer affinity placement fitted on fit.topk[T, L, K] and fit.load[L, E] -> Placement
    share[L, E, N]: minimises the new ranks tokens reach between consecutive layers (same bound
    as coact_packing). From an anchor layer kept at EPLB, each layer outwards is fitted to the
    one before it; ``sweeps`` passes then refit every layer against both neighbours, a layer's
    new placement kept only if its exact cost on the fit tokens drops. Anchors: first, middle
    and last layer; the chain with the fewest rank changes wins."""
    load, topk = _fit_arrays(E, fit)
    start, cap = layer_bound(load, N, slack)
    L = load.shape[0]
    J = count_pairs(topk, E, within=False, across=True).across
    J = np.zeros((0, E, E)) if J is None else J.astype(np.float64)
    best, best_cost = start, _total_changes(topk, start, N)
    rng = np.random.default_rng(seed)
    starts = [(a, None) for a in sorted({0, L // 2, L - 1})] + [(L // 2, r) for r in range(restarts)]
    for anchor, restart in starts:
        ranks = start.copy()
        if restart is not None:
            perm = rng.permutation(E)  # a random balanced grouping of the anchor, kept if in bound
            cand = np.repeat(np.arange(N), E // N)[perm]
            if np.bincount(cand, weights=load[anchor], minlength=N).max() > cap[anchor]:
                continue
            ranks[anchor] = cand
        masks = [rank_masks(ranks[l][topk[:, l]], N) for l in range(L)]
        args = (J, topk, load, cap, N, max_swaps)
        for l in range(anchor + 1, L):
            _refit_layer(l, ranks, masks, True, False, *args)
        for l in range(anchor - 1, -1, -1):
            _refit_layer(l, ranks, masks, False, True, *args)
        for _ in range(max(0, int(sweeps))):
            for l in range(L):
                _refit_layer(l, ranks, masks, True, True, *args)
        cost = _total_changes(topk, ranks, N)
        if cost < best_cost:
            best, best_cost = ranks, cost
    return _layered("affinity", best, N)
