"""AlltoAll dispatch traffic of one step: who sends how many assignments (and bytes) to whom.

A step holds N*B sequences in the fixed seeded order; rank i holds sequences [i*B, (i+1)*B) of the
step (``dodoco.ep.steps``: ``StepSource.ranks``). ``src[i, e]`` is the assignments of rank i's tokens to expert e. The per-expert-copy traffic
matrix (what Megatron's alltoall sends) is s[i, j] = sum_e src[i, e] * share[e, j]: its row sums are
the source assignments, its column sums the rank loads, and s[i, i] stays on rank i (it crosses no
link). The deduplicated matrix (what DeepEP sends) counts distinct (token, destination rank) pairs
and needs token traces. docs/ep.md derives each.

Shape legend: T tokens, L MoE layers, E routed experts, K experts per token, N EP ranks, B
sequences per rank per step, H hidden size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dodoco.ep.layout import Placement
from dodoco.errors import DodocoError

__all__ = [
    "copy_traffic_from_tokens",
    "dedup_traffic",
    "distinct_destinations",
    "off_diagonal",
    "pair_counts",
    "send_recv",
    "send_recv_bytes",
    "send_recv_local",
    "send_recv_nodes",
    "split_sizes",
    "token_destinations",
    "traffic_bytes",
    "traffic_matrix",
]


def traffic_matrix(src, placement: Placement) -> np.ndarray:
    """Per-expert-copy traffic s[i, j] = sum_e src[i, e] * share[e, j]: src[N, E] -> float64 [N, N].

    For a per-layer placement pass src[N, L, E] -> [L, N, N].
    """
    src = np.asarray(src, dtype=np.float64)
    if placement.layered:
        return np.einsum("ile,lej->lij", src, placement.share)
    return src @ placement.share


def traffic_bytes(s, hidden: int, dtype_bytes: int) -> np.ndarray:
    """Assignments -> bytes: s * H * bytes per element (one H-wide row per assignment)."""
    return np.asarray(s, dtype=np.float64) * (int(hidden) * int(dtype_bytes))


def _wide(x) -> np.ndarray:
    """x as int64 (integers: sums of narrow counts cannot wrap) or float64."""
    x = np.asarray(x)
    return x.astype(np.int64 if x.dtype.kind in "uib" else np.float64, copy=False)


def send_recv(s) -> tuple[np.ndarray, np.ndarray]:
    """Off-diagonal send and receive totals of s[..., N, N] -> (S[..., N], R[..., N]).

    S_i = sum_{j != i} s[i, j], R_j = sum_{i != j} s[i, j]: s[i, i] stays on rank i and crosses no
    link. Integer matrices give int64 (64-bit sums), others float64.
    """
    s = _wide(s)
    diag = np.diagonal(s, axis1=-2, axis2=-1)
    return send_recv_local(s.sum(axis=-1), s.sum(axis=-2), diag)


def send_recv_local(sent, received, local) -> tuple[np.ndarray, np.ndarray]:
    """send_recv when only totals and the diagonal are known (the scan's fast path).

    sent[..., N] = sum_j s[i, j] (all assignments of rank i's tokens), received[..., N] =
    sum_i s[i, j] (rank loads R_j), local[..., N] = s[i, i] -> (sent - local, received - local),
    the same S_i and R_j as send_recv (int64 for integers, else float64).
    """
    local = _wide(local)
    return _wide(sent) - local, _wide(received) - local


def send_recv_nodes(x) -> tuple[np.ndarray, np.ndarray]:
    """Send and receive totals of rank-to-node traffic x[..., N, M] (rank i to node m, only what
    crosses a node boundary) -> (sent by each rank [..., N], received by each node [..., M])."""
    x = _wide(x)
    return x.sum(axis=-1), x.sum(axis=-2)


def off_diagonal(s) -> np.ndarray:
    """s[..., N, N] with the diagonal (what stays on a rank) set to 0."""
    s = np.asarray(s)
    return s * (1 - np.eye(s.shape[-1], dtype=s.dtype))


def send_recv_bytes(s, hidden: int, dtype_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Bytes each rank sends and receives over links: s[..., N, N] -> (S_i[..., N], R_j[..., N])."""
    S, R = send_recv(s)
    return traffic_bytes(S, hidden, dtype_bytes), traffic_bytes(R, hidden, dtype_bytes)


def split_sizes(s) -> np.ndarray:
    """all_to_all_single split sizes of one step: s[N, N] -> int64 [N, N] (rows: input splits).

    Integer matrices (one-hot placements) are returned as they are. Fractional ones (replicated
    experts split evenly) are rounded per row by largest remainder: floor every entry, then give the
    row's remaining round(row total) - sum(floor) units to the largest fractional parts (ties: lower
    column first), so every row total is preserved.
    """
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise DodocoError(f"traffic matrix must be square [N, N], got shape {s.shape}")
    if np.any(s < 0):
        raise DodocoError("traffic matrix has negative entries")
    base = np.floor(s + 1e-9)
    frac = s - base
    missing = (np.rint(s.sum(axis=1)) - base.sum(axis=1)).astype(np.int64)  # [N]
    cols = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    order = np.lexsort((cols, -np.round(frac, 9)), axis=-1)  # largest fraction first, ties: lower column
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(s.shape[1])[None, :].repeat(s.shape[0], 0), axis=1)
    return (base + (rank < missing[:, None])).astype(np.int64)


def token_destinations(topk, placement: Placement, token_ids=None) -> np.ndarray:
    """Destination rank of each (token, choice): topk[T, K] -> int64 [T, K]; one layer's placement.

    An expert with several replicas sends token t to replica number (t mod r_e) in rank order
    (replicas on ranks sorted ascending, a rank holding two replicas counted twice), so loads split
    evenly over replicas as ``share`` assumes, deterministically. ``token_ids[T]`` (default
    0..T-1) are the token indices t used for that choice (use global token indices across ranks).
    """
    if placement.layered:
        raise DodocoError("token_destinations takes one layer's placement: use placement.layer(l)")
    topk = np.asarray(topk).astype(np.int64)
    copies = placement.copies  # [E, N]
    r = copies.sum(axis=1)  # replicas per expert
    cum = np.cumsum(copies, axis=1)  # [E, N]
    t = np.arange(topk.shape[0]) if token_ids is None else np.asarray(token_ids, dtype=np.int64)
    pick = t[:, None] % r[topk]  # [T, K] replica number
    # destination = first rank whose cumulative copy count exceeds pick
    return (cum[topk] <= pick[..., None]).sum(axis=-1)


def distinct_destinations(dst) -> tuple[np.ndarray, np.ndarray]:
    """The one deduplication: each row's distinct destinations. dst[T, K] -> (d[T, K] each row sorted,
    first[T, K] bool): d[t][first[t]] are the distinct values of row t, each once."""
    d = np.sort(np.asarray(dst), axis=-1)
    first = np.ones(d.shape, dtype=bool)
    first[..., 1:] = d[..., 1:] != d[..., :-1]
    return d, first


def pair_counts(src, dst, n_src: int, n_dst: int, mask=None) -> np.ndarray:
    """Counts of (source, destination) pairs: src[T] in [0, n_src), dst[T, K] in [0, n_dst), counted
    where mask[T, K] (default everywhere) -> int64 [n_src, n_dst]."""
    key = np.asarray(src, dtype=np.int64)[:, None] * n_dst + np.asarray(dst, dtype=np.int64)
    key = key.ravel() if mask is None else key[np.asarray(mask, dtype=bool)]
    return np.bincount(key, minlength=n_src * n_dst).reshape(n_src, n_dst)


def _by_rank(topk_by_rank: Sequence) -> tuple[np.ndarray, np.ndarray]:
    parts = [np.asarray(t).reshape(-1, np.shape(t)[-1]) for t in topk_by_rank]
    src = np.concatenate([np.full(p.shape[0], i, dtype=np.int64) for i, p in enumerate(parts)])
    return np.concatenate(parts, axis=0), src


def dedup_traffic(topk_by_rank: Sequence, placement: Placement) -> np.ndarray:
    """Deduplicated traffic from token traces: distinct (token, destination rank) pairs -> int64 [N, N].

    topk_by_rank[i] is topk[T_i, K] (one layer) of the tokens source rank i holds in the step. A
    token whose K experts land on m distinct ranks counts once for each of those m ranks (DeepEP
    sends one copy per destination rank); replicas chosen as in token_destinations with global
    token indices in rank order. dedup <= copy_traffic_from_tokens elementwise, with equality when
    every token's K experts sit on K different ranks.
    """
    topk, src = _by_rank(topk_by_rank)
    N = placement.num_ranks
    dst, first = distinct_destinations(token_destinations(topk, placement))
    return pair_counts(src, dst, N, N, first)


def copy_traffic_from_tokens(topk_by_rank: Sequence, placement: Placement) -> np.ndarray:
    """Per-expert-copy traffic from token traces -> int64 [N, N] (same replica rule as dedup)."""
    topk, src = _by_rank(topk_by_rank)
    N = placement.num_ranks
    return pair_counts(src, token_destinations(topk, placement), N, N)
