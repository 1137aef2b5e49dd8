"""EP-aware topology: which ranks share a node, and the rank-to-node mapping that minimises the
busiest node's inter-node bytes (``best_rank_nodes``; mitigation (d) of ``dodoco.ep.mitigations``).

Ranks 0..N-1 fill nodes of G GPUs in order unless the placement maps them (``nodes_of``). Node
traffic sums a rank traffic matrix over each node's ranks; what a node sends and receives over its
NICs is the off-diagonal of that node matrix (``traffic.send_recv``). docs/ep.md.

Shape legend: L MoE layers, E routed experts, N EP ranks, B sequences per rank per step, G GPUs per
node, M nodes.
"""

from __future__ import annotations

import numpy as np

from dodoco.ep.layout import Placement
from dodoco.ep.loads import RankMap
from dodoco.ep.steps import StepSource
from dodoco.ep.traffic import send_recv
from dodoco.errors import DodocoError

__all__ = ["best_rank_nodes", "node_traffic", "nodes_of", "step_traffic"]


def step_traffic(src: StepSource, N: int, B: int, placement: Placement):
    """Per-copy traffic per step and layer -> (s[n, L, N, N], totals[n, L, N]).

    Row i of s is the rank loads of rank i's tokens: s[i, :] = src[i] @ share (RankMap)."""
    s = RankMap(placement).loads(src.ranks(N, B))  # [n, N src, L, N dst]
    return np.swapaxes(s, 1, 2), np.swapaxes(src.totals(N, B), 1, 2)


def node_traffic(s, rank_node) -> tuple[np.ndarray, np.ndarray]:
    """Inter-node send/recv per node of rank traffic s[..., N, N] -> (send[..., M], recv[..., M]).

    Node a sends sum_{i in a, j not in a} s[i, j] and receives sum_{i not in a, j in a} s[i, j].
    """
    rank_node = np.asarray(rank_node)
    onehot = (rank_node[:, None] == np.arange(int(rank_node.max()) + 1)).astype(np.float64)
    return send_recv(onehot.T @ np.asarray(s, dtype=np.float64) @ onehot)  # node matrix [..., M, M]


def nodes_of(N: int, G: int, placement: Placement | None = None) -> np.ndarray:
    """Node of each rank -> int64 [N]: the placement's own ``rank_node`` when it has one, else ranks
    0..N-1 filling nodes of G in order (DodocoError when G does not divide N)."""
    if G < 1 or N % G:
        raise DodocoError(f"N={N} ranks do not split into nodes of gpus_per_node={G}")
    if placement is not None and placement.rank_node is not None:
        return placement.rank_node
    return np.arange(N) // G


def _partitions(N: int, G: int):
    """All ways to split ranks 0..N-1 into unlabeled nodes of G (first free rank opens a node)."""
    from itertools import combinations

    def rec(free):
        if not free:
            yield []
            return
        head, rest = free[0], free[1:]
        for mates in combinations(rest, G - 1):
            left = [r for r in rest if r not in mates]
            for tail in rec(left):
                yield [(head,) + mates] + tail

    yield from rec(list(range(N)))


def _objective(s, rank_node) -> float:
    send, recv = node_traffic(s, rank_node)
    return float(max(send.max(), recv.max()))


def _n_partitions(N: int, G: int) -> int:
    from math import comb

    total, free = 1, N
    while free:
        total, free = total * comb(free - 1, G - 1), free - G
    return total


def best_rank_nodes(s, G: int, method: str = "auto", max_passes: int = 4) -> np.ndarray:
    """Rank-to-node mapping rank_node[N] (G ranks per node) minimising the max inter-node bytes
    (send or receive) of traffic s[N, N]. "exact": every partition (auto when <= 10000 of them);
    "local": hot ranks dealt over nodes in snake order, then first-improvement pairwise swaps
    (at most max_passes passes), kept only if better than the contiguous mapping."""
    s = np.asarray(s, dtype=np.float64)
    N = s.shape[0]
    base = nodes_of(N, G)
    if method == "exact" or (method == "auto" and _n_partitions(N, G) <= 10000):
        best, best_v = base, _objective(s, base)
        for part in _partitions(N, G):
            m = np.empty(N, dtype=np.int64)
            for a, members in enumerate(part):
                m[list(members)] = a
            v = _objective(s, m)
            if v < best_v - 1e-9:
                best, best_v = m, v
        return best
    vol = np.add(*send_recv(s))  # off-diagonal bytes each rank sends plus receives
    M, cur = N // G, np.empty(N, dtype=np.int64)
    for k, r in enumerate(np.argsort(-vol, kind="stable")):
        lap, j = divmod(k, M)
        cur[r] = j if lap % 2 == 0 else M - 1 - j
    v = _objective(s, cur)
    for _ in range(max_passes):
        improved = False
        for a in range(N):
            for b in range(a + 1, N):
                if cur[a] == cur[b]:
                    continue
                cur[a], cur[b] = cur[b], cur[a]
                w = _objective(s, cur)
                if w < v - 1e-9:
                    v, improved = w, True
                else:
                    cur[a], cur[b] = cur[b], cur[a]
        if not improved:
            break
    return cur if v < _objective(s, base) - 1e-9 else base
