"""Per-rank loads and receiver skew of a placement.

Rank load R_r = sum_e c_e * share[e, r]: the assignments rank r receives (``c @ share``). Receiver
skew rho = max_r R_r / mean_r R_r (1 = balanced, N = one rank receives everything). docs/ep.md.

``RankMap`` precomputes how to evaluate ``c @ share`` fast for a placement: a reshape-sum when
every rank holds a contiguous block (or a stride) of experts, a gather of each rank's experts when
each expert lives on one rank, and a matrix product otherwise (replicated experts). The results are
identical to ``c @ share`` (tests check it).

Shape legend: L MoE layers, E routed experts, N EP ranks.
"""

from __future__ import annotations

import numpy as np

from dodoco.ep.layout import Placement
from dodoco.metrics.imbalance import max_mean

__all__ = ["RankMap", "rank_loads", "receiver_skew", "replica_max_mean"]


def replica_max_mean(c, placement: Placement) -> np.ndarray:
    """Per-physical-expert max/mean: c[..., (L,) E] -> float64 [..., (L)].

    A replica of expert e serves c_e / r_e; the mean is over all E + R replicas, sum(c) / sum(r).
    Equals the per-expert max/mean when nothing is replicated. Placements cannot change the
    per-expert max/mean; replication can change this one.
    """
    c = np.asarray(c, dtype=np.float64)
    r = placement.replicas
    with np.errstate(divide="ignore", invalid="ignore"):
        return (c / r).max(axis=-1) / (c.sum(axis=-1) / r.sum(axis=-1))


def receiver_skew(R) -> np.ndarray:
    """Receiver skew of rank loads R[..., N] -> float64 [...]: max_r R_r / mean_r R_r (``max_mean``)."""
    return max_mean(R)


def _rank_index(rank_of: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray | None]:
    """rank_of[L, E] -> (idx[L, N, k], mask[L, N, k] or None): each rank's experts, padded to k."""
    order = np.argsort(rank_of, axis=-1, kind="stable")
    slots = np.stack([np.bincount(r, minlength=N) for r in rank_of])  # [L, N]
    k = int(slots.max())
    start = np.cumsum(slots, axis=-1) - slots
    j = np.arange(k)
    valid = j < slots[..., None]  # [L, N, k]
    pos = np.where(valid, start[..., None] + j, 0)
    idx = np.take_along_axis(order[:, None, :], pos, axis=-1)
    return idx, (None if valid.all() else valid)


def _acc(x: np.ndarray, dtype) -> tuple[np.ndarray, object]:
    """(x, accumulator dtype): dtype if given (the caller knows sums fit), else 64-bit integers
    for integer x and None (float64) otherwise; x is widened first if narrower than dtype."""
    if dtype is None:
        dtype = {"u": np.uint64, "i": np.int64, "b": np.int64}.get(x.dtype.kind)
    if dtype is not None and np.dtype(dtype).itemsize > x.dtype.itemsize and x.dtype.itemsize < 4:
        x = x.astype(dtype)  # sums of slices below accumulate in x's own dtype
    return x, dtype


def _group_sum(x: np.ndarray, a: int, b: int, sum_last: bool, dtype=None) -> np.ndarray:
    """Sum x[..., a*b] in groups: sum_last -> view [..., a, b] summed over b; else [..., b, a]
    summed over b. Picks the fast numpy form: a reduction over a tiny axis is slow, so a small b
    on the last axis is summed as b strided slices, a small a as a strided slice per output."""
    x, dt = _acc(x, dtype)
    if b == 1:
        return x.reshape(x.shape[:-1] + (a,)).astype(dt or x.dtype, copy=False)
    if sum_last:
        if b >= 16:
            return x.reshape(x.shape[:-1] + (a, b)).sum(axis=-1, dtype=dt)
        acc = x[..., 0::b].astype(dt or x.dtype)
        for j in range(1, b):
            acc += x[..., j::b]
        return acc
    if a >= 16:
        return x.reshape(x.shape[:-1] + (b, a)).sum(axis=-2, dtype=dt)
    return np.stack([x[..., r::a].sum(axis=-1, dtype=dt) for r in range(a)], axis=-1)


class RankMap:
    """A placement prepared for fast rank loads (``loads``) and local assignments (``local``).

    For one-hot placements (each expert on one rank) both are sums over each rank's experts:
    reshape-sums for contiguous blocks and strides, flat gathers otherwise; replicated experts
    use ``c @ share``. Results equal the matrix products exactly (tests check it).
    """

    def __init__(self, placement: Placement):
        self.placement = p = placement
        self.N, self.E = p.num_ranks, p.num_experts
        self.layered = p.layered
        rank_of = p.rank_of
        self.kind, self.idx, self.mask = "dense", None, None
        self._flat: dict = {}
        if rank_of is None:
            return
        N, E = self.N, self.E
        if E % N == 0 and np.all(rank_of == np.arange(E) // (E // N)):
            self.kind = "blocks"
        elif E % N == 0 and np.all(rank_of == np.arange(E) % N):
            self.kind = "strided"
        else:
            self.kind = "gather"
        self.idx, self.mask = _rank_index(rank_of.reshape(-1, E), N)  # [L or 1, N, k]

    def _index(self, L: int) -> np.ndarray:
        """Flat gather index into rows of [L*E]: each rank's experts, layout [L, N, k] (k >= 16)
        or [k, L, N] (small k, so that the sum runs over an outer axis)."""
        if L not in self._flat:
            idx = np.broadcast_to(self.idx, (L,) + self.idx.shape[1:])  # [L, N, k]
            flat = np.arange(L)[:, None, None] * self.E + idx
            self._flat[L] = (flat if flat.shape[-1] >= 16 else np.moveaxis(flat, -1, 0)).ravel()
        return self._flat[L]

    def _take(self, x2: np.ndarray, L: int, dtype=None) -> np.ndarray:
        """Gather-and-sum over each rank's k experts: x2[n, L*E] -> [n, L, N]."""
        k = self.idx.shape[-1]
        g, dt = _acc(np.take(x2, self._index(L), axis=1), dtype)
        if self.mask is not None:  # padding of ranks with fewer than k experts
            m = np.broadcast_to(self.mask, (L,) + self.mask.shape[1:])  # [L, N, k]
            g = g * (m if k >= 16 else np.moveaxis(m, -1, 0)).ravel().astype(g.dtype)
        if k >= 16:
            return g.reshape(-1, L, self.N, k).sum(axis=-1, dtype=dt)
        return g.reshape(-1, k, L, self.N).sum(axis=1, dtype=dt)

    def loads(self, c, dtype=None) -> np.ndarray:
        """Rank loads: c[..., E] (or c[..., L, E] for a per-layer placement) -> [..., (L,) N].

        Integer counts on one-hot placements give 64-bit integers, or ``dtype`` when the caller
        knows the sums fit in it (faster); replicated experts give float64.
        """
        c = np.asarray(c)
        N, E = self.N, self.E
        if self.kind == "blocks":
            return _group_sum(c, N, E // N, sum_last=True, dtype=dtype)
        if self.kind == "strided":
            return _group_sum(c, N, E // N, sum_last=False, dtype=dtype)
        if self.kind == "gather":
            L = c.shape[-2] if self.layered else 1
            lead = c.shape[:-2] if self.layered else c.shape[:-1]
            out = self._take(np.ascontiguousarray(c).reshape(-1, L * E), L, dtype)
            return out.reshape(lead + ((L, N) if self.layered else (N,)))
        share = self.placement.share
        if self.layered:
            return np.einsum("...le,len->...ln", c.astype(np.float64), share)
        return c.astype(np.float64) @ share

    def _rank_masks(self, L: int, dtype) -> np.ndarray:
        """[N, L, E] of dtype: 1 where expert e of layer l lives on rank i (one-hot placements)."""
        key = ("masks", L, np.dtype(dtype).str)
        if key not in self._flat:
            rank_of = np.broadcast_to(self.placement.rank_of.reshape(-1, self.E), (L, self.E))
            self._flat[key] = (rank_of[None] == np.arange(self.N)[:, None, None]).astype(dtype)
        return self._flat[key]

    def local(self, src, layers: bool = False, dtype=None) -> np.ndarray:
        """Assignments that stay on their source rank: src[..., N, E] -> [..., N], or with
        ``layers=True`` (always for a per-layer placement) src[..., N, L, E] -> [..., N, L].

        src[..., i, ...] are the counts of the tokens held by rank i; the result is s[i, i] of the
        traffic matrix, sum_e src[i, e] * share[e, i]. One-hot placements sum each rank's own
        experts (a masked sum for few ranks, a gather of its k experts for many), in 64-bit
        integers or ``dtype`` when the caller knows the sums fit in it.
        """
        src = np.asarray(src)
        N, E = self.N, self.E
        has_l = bool(layers or self.layered)
        x = src if has_l else src[..., None, :]  # [..., N, L, E]
        L = x.shape[-2]
        if self.kind == "dense":
            share = np.broadcast_to(self.placement.share.reshape(-1, E, N), (L, E, N))
            out = np.einsum("...ile,lei->...il", x.astype(np.float64), share)
        else:
            lead = x.shape[:-3]
            x, dt = _acc(x.reshape((-1, N, L, E)), dtype)
            out = np.empty((x.shape[0], N, L), dtype=dt or np.float64)
            if N <= 16:  # masked sums: one pass over src, fast for any layout
                masks = self._rank_masks(L, x.dtype if dtype is not None else dt or np.float64)
                for i in range(N):
                    out[:, i] = np.einsum("nle,le->nl", x[:, i], masks[i])
            else:  # gather rank i's k experts per layer (1/N of src)
                idx = np.broadcast_to(self.idx, (L,) + self.idx.shape[1:])  # [L, N, k]
                mask = None if self.mask is None else np.broadcast_to(self.mask, idx.shape)
                flat = np.arange(L)[:, None] * E  # [L, 1]
                for i in range(N):
                    g = x[:, i].reshape(-1, L * E)[:, (flat + idx[:, i, :]).T.ravel()]
                    g = g.reshape(-1, idx.shape[-1], L)
                    if mask is not None:
                        g = g * mask[:, i, :].T
                    out[:, i] = g.sum(axis=1, dtype=dt)
            out = out.reshape(lead + (N, L))
        return out if has_l else out[..., 0]


def rank_loads(c, placement: Placement) -> np.ndarray:
    """Rank loads R = c @ share: c[..., E] -> [..., N] (per-layer placement: c[..., L, E] -> [..., L, N]).

    R[..., r] = sum_e c[..., e] * share[e, r]: the assignments rank r receives.
    """
    return RankMap(placement).loads(c)
