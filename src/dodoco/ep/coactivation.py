"""Expert co-activation within a MoE layer, from token traces.

Token traces ``topk[T, L, K]`` hold the K experts each token chose in each MoE layer. One pass over
them (``count_pairs``) gives, per layer, the pair counts ``within[l, a, b]`` = tokens that chose
both a and b (the diagonal holds the per-expert token counts, so ``within[l] = X_l^T X_l`` for the
token x expert indicator matrix X_l), and, between consecutive layers, the transition counts
``across[l, a, b]`` = tokens that chose a in layer l and b in layer l+1 (``X_l^T X_{l+1}``;
``dodoco.ep.affinity`` reads them).

Independence. A token's K experts are distinct, so "a and b chosen independently" is not the
product of the marginals per token. DODOCO's expectation keeps what the data fixes, the marginals
n_e and the number of ordered pairs T K (K-1), and pairs assignments at random:

    E_ab = T K (K-1) n_a n_b / ((sum_c n_c)^2 - sum_c n_c^2)        (a != b)

which is exact for uniform routing (every pair then has probability K (K-1) / (E (E-1))) and
sums to the observed number of pairs. lift_ab = within_ab / E_ab (1 = independent). docs/
beyond-counts.md derives it.

Shape legend: T tokens, L MoE layers, E routed experts, K experts per token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dodoco.errors import DodocoError

__all__ = [
    "PairCounts",
    "check_trace",
    "cluster_order",
    "coactivation_rows",
    "count_pairs",
    "expected_pairs",
    "lift",
    "top_pairs",
]

_CHUNK = 4096  # tokens per chunk: the [chunk, K, K] key buffer stays in the CPU caches


@dataclass(frozen=True)
class PairCounts:
    """Token-level pair counts of one trace.

    marginal: int64 [L, E], tokens that chose expert e in layer l.
    within: int64 [L, E, E] or None; within[l, a, b] tokens that chose a and b in layer l
        (symmetric, diagonal = marginal).
    across: int64 [L-1, E, E] or None; across[l, a, b] tokens that chose a in layer l and b in
        layer l+1 (K^2 pairs per token).
    tokens: T. K: experts per token.
    """

    marginal: np.ndarray
    within: np.ndarray | None
    across: np.ndarray | None
    tokens: int
    K: int

    @property
    def E(self) -> int:
        return int(self.marginal.shape[-1])


def check_trace(topk, E: int, offsets=None) -> np.ndarray:
    """topk[T, L, K] as an array (memory maps kept) after the checks every trace analysis needs:
    shape, integer ids, E >= 1 and, with offsets[S+1], offsets from 0 to T, non-decreasing.
    Expert ids in [0, E) are checked where the ids are read (count_pairs, per chunk)."""
    topk = np.asarray(topk) if not isinstance(topk, np.ndarray) else topk
    if offsets is not None:
        o = np.asarray(offsets)
        T = np.shape(topk)[0] if np.ndim(topk) else 0
        if o.ndim != 1 or o.size < 2 or o[0] != 0 or o[-1] != T or np.any(np.diff(o) < 0):
            raise DodocoError(
                f"offsets must run non-decreasing from 0 to T={T} tokens, got shape "
                f"{o.shape} ending at {o[-1] if o.size else None}: pass the run's "
                f"token_offsets with its tokens"
            )
    if topk.ndim != 3 or topk.shape[0] == 0 or topk.shape[2] == 0:
        raise DodocoError(f"token trace must have shape [T, L, K] with T, K >= 1, got shape {topk.shape}")
    if topk.dtype.kind not in "ui":
        raise DodocoError(f"token trace must hold integer expert ids, got dtype {topk.dtype}")
    if int(E) < 1:
        raise DodocoError(f"need at least one expert, got E={E}")
    return topk


def _chunk_ids(chunk: np.ndarray, E: int) -> np.ndarray:
    """A chunk of the trace [n, L, K] -> intp [L, n, K] (layer-major), ids checked in [0, E)."""
    ids = np.ascontiguousarray(np.swapaxes(chunk, 0, 1), dtype=np.intp)
    if ids.size and (ids.min() < 0 or ids.max() >= E):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise DodocoError(f"token trace names expert {bad} but E={E}: pass the model's number of routed experts")
    return ids


def _add_counts(acc: np.ndarray, left: np.ndarray, right: np.ndarray, buf: np.ndarray) -> None:
    """acc[E*E] += counts of keys left[n, 1] + right[n, m] (left pre-scaled by E), via buf[>=n, m]."""
    n, m = right.shape
    np.add(left, right, out=buf[:n, :m])
    acc += np.bincount(buf[:n, :m].ravel(), minlength=acc.size)


def _count_block(topk, E: int, lo: int, hi: int, within: bool, across: bool, chunk: int, perm):
    """Counts of layers lo..hi-1 (and their transitions to the next layer) -> (marginal [hi-lo, E],
    within [hi-lo, E*E] or None, across [pairs, E*E] or None); see count_pairs."""
    T, L, K = topk.shape
    EE, pairs = E * E, within and K > 1
    top = min(hi + 1, L) if across else hi
    n_acr = max(0, min(hi, L - 1) - lo) if across else 0
    marg = np.zeros((hi - lo, E), dtype=np.int64)
    win = np.zeros((hi - lo, EE), dtype=np.int64) if within else None
    acr = np.zeros((n_acr, EE), dtype=np.int64) if n_acr else None
    buf = np.empty((chunk, K), dtype=np.intp)
    for a in range(0, T, chunk):
        ids = _chunk_ids(topk[a : a + chunk, lo:top], E)  # [layers, n, K]
        nxt = ids if perm is None else _chunk_ids(topk[perm[a : a + chunk], lo:top], E)
        scaled = ids * E
        for j in range(hi - lo):
            if not pairs:
                marg[j] += np.bincount(ids[j].ravel(), minlength=E)
            for i in range(K - 1 if pairs else 0):
                _add_counts(win[j], scaled[j][:, i : i + 1], ids[j][:, i + 1 :], buf)
            for i in range(K if j < n_acr else 0):
                _add_counts(acr[j], scaled[j][:, i : i + 1], nxt[j + 1], buf)
    if pairs:
        w = win.reshape(hi - lo, E, E)
        marg = (w.sum(axis=2) + w.sum(axis=1)) // (K - 1)  # a token on a pairs it with K-1 others
    return marg, win, acr


_SHARED: dict = {}  # the trace and permutation forked workers read (never pickled)


def _worker(args):
    return _count_block(_SHARED["topk"], *args, _SHARED["perm"])


def _groups(L: int, workers: int) -> list[tuple[int, int]]:
    """L layers in ``workers`` contiguous groups of near-equal size."""
    cuts = np.linspace(0, L, min(workers, L) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def count_pairs(
    topk,
    E: int,
    within: bool = True,
    across: bool = True,
    chunk: int = _CHUNK,
    permute_seed: int | None = None,
    workers: int | None = None,
) -> PairCounts:
    """Pair counts of topk[T, L, K] in one pass -> PairCounts (see the class for the arrays).

    Chunks of ``chunk`` tokens; each pair is one key a*E + b counted with np.bincount, one slot
    of the first expert at a time (small buffers stay in cache), so the cost is T (L K(K-1)/2 +
    (L-1) K^2) counted keys; the marginals are the within-pair row sums / (K-1) (a token on
    expert a pairs it with its K-1 others). ``permute_seed``: pair layer l with layer l+1 of a
    seeded random permutation of the tokens (the independence control of the affinity: the
    marginals stay, the token link is cut); ``within`` is then not computed. ``workers``: forked
    processes, each counting a contiguous group of layers (default: 2 on machines with 2+ CPUs
    for traces of at least 2^24 token-layers, else 1); the counts are identical either way.
    """
    topk = check_trace(topk, E)
    T, L, K = topk.shape
    E = int(E)
    within = within and permute_seed is None
    perm = None if permute_seed is None else np.random.default_rng(permute_seed).permutation(T)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if T * L >= 1 << 24 else 1
    groups = _groups(L, max(1, int(workers)))
    jobs = [(E, lo, hi, within, across, int(chunk)) for lo, hi in groups]
    if len(groups) == 1:
        parts = [_count_block(topk, *jobs[0], perm)]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _SHARED.update(topk=topk, perm=perm)
        try:
            with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_worker, jobs))
        finally:
            _SHARED.clear()
    marg = np.concatenate([p[0] for p in parts])
    win = np.concatenate([p[1] for p in parts]).reshape(L, E, E) if within else None
    acr = [p[2] for p in parts if p[2] is not None]
    acr = np.concatenate(acr).reshape(L - 1, E, E) if acr else None
    if win is not None:
        win += np.swapaxes(win, 1, 2)  # pairs were counted once, as (first, second) slot
        win[:, np.arange(E), np.arange(E)] = marg
    return PairCounts(marg, win, acr, T, K)


def expected_pairs(marginal, tokens: int, K: int) -> np.ndarray:
    """Pairs expected under independence: marginal[..., E] -> float64 [..., E, E] (zero diagonal).

    E_ab = T K (K-1) n_a n_b / ((sum n)^2 - sum n^2): the marginals and the T K (K-1) ordered
    pairs kept, assignments paired at random (exact for uniform routing).
    """
    n = np.asarray(marginal, dtype=np.float64)
    tot = n.sum(axis=-1)
    den = tot**2 - (n**2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(den > 0, tokens * K * (K - 1) / den, 0.0)
    out = n[..., :, None] * n[..., None, :] * scale[..., None, None]
    idx = np.arange(n.shape[-1])
    out[..., idx, idx] = 0.0
    return out


def lift(observed, expected) -> np.ndarray:
    """observed / expected, elementwise; NaN where nothing was expected (and on the diagonal)."""
    o = np.asarray(observed, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(e > 0, o / e, np.nan)
    idx = np.arange(o.shape[-1])
    out[..., idx, idx] = np.nan
    return out


def _upper(x: np.ndarray) -> np.ndarray:
    """The strict upper triangle of x[E, E] as a flat array (each unordered pair once)."""
    return x[np.triu_indices(x.shape[-1], 1)]


def _top_share(pairs: np.ndarray, frac: float) -> float:
    """Share of the total held by the largest ceil(frac * len) entries of pairs[P]."""
    m = max(1, int(np.ceil(frac * pairs.size)))
    tot = pairs.sum()
    return float(np.sort(pairs)[::-1][:m].sum() / tot) if tot > 0 else float("nan")


def coactivation_rows(
    pc: PairCounts, top_frac: float = 0.05, min_expected: float = 5.0, n_noise: int = 20, seed: int = 0
) -> list[dict]:
    """Per-layer co-activation summary of PairCounts -> one dict per layer.

    Columns: pairs (co-selections, unordered), top_share (share of co-selections in the top
    ``top_frac`` of the E(E-1)/2 pairs), top_share_indep (the same for the expected counts),
    tv (total-variation distance between observed and expected pair distributions, 0 =
    independent), tv_noise (mean tv of ``n_noise`` multinomial samples of the same size drawn
    from the expectation: the floor that sampling alone gives for independent pairs),
    max_lift and lift_p99 over pairs with at least ``min_expected`` expected co-selections.
    """
    if pc.within is None:
        raise DodocoError("co-activation needs within-layer pair counts: count_pairs(within=True)")
    rng = np.random.default_rng(seed)
    rows = []
    exp = expected_pairs(pc.marginal, pc.tokens, pc.K)
    for l in range(pc.within.shape[0]):
        o, e = _upper(pc.within[l]).astype(np.float64), _upper(exp[l])
        tot = o.sum()
        p_e = e / e.sum() if e.sum() > 0 else e
        tv = 0.5 * float(np.abs(o / tot - p_e).sum()) if tot > 0 else float("nan")
        noise = (
            [0.5 * float(np.abs(rng.multinomial(int(tot), p_e) / tot - p_e).sum()) for _ in range(n_noise)]
            if tot > 0
            else [float("nan")]
        )
        keep = e >= min_expected
        li = o[keep] / e[keep]
        rows.append(
            {
                "layer": l,
                "pairs": int(tot),
                "top_share": _top_share(o, top_frac),
                "top_share_indep": _top_share(e, top_frac),
                "tv": tv,
                "tv_noise": float(np.mean(noise)),
                "max_lift": float(li.max()) if li.size else float("nan"),
                "lift_p99": float(np.percentile(li, 99)) if li.size else float("nan"),
            }
        )
    return rows


def top_pairs(within, expected, m: int = 20) -> list[tuple[int, int, int, float]]:
    """The m most co-selected pairs of one layer: within[E, E], expected[E, E] ->
    [(a, b, co-selections, lift)] with a < b, by co-selections descending (ties: lower a, b)."""
    o = np.asarray(within)
    a, b = np.triu_indices(o.shape[-1], 1)
    cnt = o[a, b]
    order = np.lexsort((b, a, -cnt))[:m]
    e = np.asarray(expected, dtype=np.float64)[a, b]
    return [(int(a[i]), int(b[i]), int(cnt[i]), float(cnt[i] / e[i]) if e[i] > 0 else float("nan")) for i in order]


def _merge_order(left: list, right: list, D: np.ndarray) -> list:
    """Join two leaf orders, flipping either so that the most similar ends meet."""
    best, out = np.inf, left + right
    for lo in (left, left[::-1]):
        for ro in (right, right[::-1]):
            d = D[lo[-1], ro[0]]
            if d < best - 1e-12:
                best, out = d, lo + ro
    return out


def cluster_order(similarity) -> np.ndarray:
    """Leaf order of an average-linkage (UPGMA) clustering: similarity[E, E] -> int64 [E].

    Distance d_ab = max(similarity) - similarity_ab (NaN counts as the least similar). Clusters
    merge closest pair first (ties: lowest indices); the merged cluster's distance to k is the
    size-weighted mean of its parts' (Lance-Williams); the merged order joins the two leaf
    orders, each possibly reversed, so that the closest leaves meet. Similar experts end up
    adjacent, which makes block structure visible in a heatmap.
    """
    s = np.asarray(similarity, dtype=np.float64)
    E = s.shape[0]
    if s.shape != (E, E):
        raise DodocoError(f"similarity must be square [E, E], got shape {s.shape}")
    s = np.where(np.isfinite(s), s, np.nanmin(s) if np.isfinite(s).any() else 0.0)
    s = (s + s.T) / 2
    leaf = s.max() - s  # leaf-to-leaf distances (for orienting merges)
    D = leaf.copy()
    np.fill_diagonal(D, np.inf)
    size = np.ones(E)
    orders: list = [[e] for e in range(E)]
    active = np.ones(E, dtype=bool)
    for _ in range(E - 1):
        Dm = np.where(active[:, None] & active[None, :], D, np.inf)
        i, j = divmod(int(np.argmin(Dm)), E)
        i, j = min(i, j), max(i, j)
        merged = (size[i] * D[i] + size[j] * D[j]) / (size[i] + size[j])
        D[i, :], D[:, i] = merged, merged
        D[i, i] = np.inf
        active[j], size[i] = False, size[i] + size[j]
        orders[i] = _merge_order(orders[i], orders[j], leaf)
    return np.asarray(orders[int(np.flatnonzero(active)[0])], dtype=np.int64)
