"""Expert placements: which EP rank(s) hold each routed expert, as pure functions on arrays.

A ``Placement`` stores ``share[E, N]``: the fraction of expert e's load that rank r serves. Rows sum
to 1; an expert with r_e replicas has its load split evenly over them (1/r_e per replica, so a rank
holding two replicas of e serves 2/r_e). Per-layer placements (EPLB is fitted per MoE layer) stack
a leading L axis: ``share[L, E, N]``. Every load and traffic function takes either form.

Constructors (docs/ep.md derives each; ``dodoco.ep.placements`` registers them by name):

- ``contiguous(E, N)``: expert e on rank floor(e*N/E); N need not divide E.
- ``round_robin(E, N)``: expert e on rank e mod N.
- ``eplb(load, N, num_redundant, ...)``: DeepSeek-EPLB-style: give each redundant replica to the
  expert with the highest load per replica, then pack the E + R physical experts onto the N ranks,
  (E + R) / N slots each, heaviest first onto the least-loaded rank with a free slot. The
  hierarchical variant first packs expert groups onto nodes, then replicates and packs within each
  node; the global variant ignores nodes.

Shape legend: L MoE layers, E routed experts, N EP ranks, R redundant (extra) replicas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["Placement", "balanced_packing", "contiguous", "eplb", "eplb_layers", "replicate_experts", "stack_layers"]


@dataclass(frozen=True, eq=False)
class Placement:
    """Experts on EP ranks.

    name: "contiguous", "round_robin", "eplb" (or a user's label).
    num_ranks: N.
    share: float64 [E, N] or [L, E, N]; share[e, r] = fraction of expert e's load served by rank r.
    replicas: int64 [E] or [L, E]; physical copies of each logical expert (1 = not replicated).
    slots_per_rank: int64 [N] or [L, N]; physical experts each rank holds.
    rank_node: int64 [N] or None; the node of each rank (None = one node / unknown).
    """

    name: str
    num_ranks: int
    share: np.ndarray
    replicas: np.ndarray
    slots_per_rank: np.ndarray
    rank_node: np.ndarray | None = None

    @property
    def num_experts(self) -> int:
        return int(self.share.shape[-2])

    @property
    def layered(self) -> bool:
        """True when share is per layer ([L, E, N])."""
        return self.share.ndim == 3

    @property
    def copies(self) -> np.ndarray:
        """int64 [(L,) E, N]: number of replicas of expert e on rank r (share * replicas)."""
        return np.rint(self.share * self.replicas[..., None]).astype(np.int64)

    @property
    def rank_of(self) -> np.ndarray | None:
        """int64 [(L,) E]: the rank of each expert when every expert lives on one rank, else None."""
        if not np.all(self.share.max(axis=-1) == 1.0):
            return None
        return self.share.argmax(axis=-1)

    def layer(self, l: int) -> "Placement":
        """The placement of MoE layer l (itself when not per layer)."""
        if not self.layered:
            return self
        return dataclasses.replace(
            self, share=self.share[l], replicas=self.replicas[l], slots_per_rank=self.slots_per_rank[l]
        )

    def with_nodes(self, rank_node) -> "Placement":
        """The same placement with ranks mapped to nodes by rank_node[N]."""
        rank_node = np.asarray(rank_node, dtype=np.int64)
        if rank_node.shape != (self.num_ranks,):
            raise DodocoError(f"rank_node must have one node per rank ({self.num_ranks}), got shape {rank_node.shape}")
        return dataclasses.replace(self, rank_node=rank_node)


def _check_sizes(E: int, N: int) -> tuple[int, int]:
    E, N = int(E), int(N)
    if E < 1 or N < 1:
        raise DodocoError(f"need at least one expert and one rank, got E={E} experts, N={N} ranks")
    if N > E:
        raise DodocoError(
            f"N={N} ranks is more than E={E} experts: without replication some ranks "
            f"would hold no expert; use N <= {E} or eplb with redundant experts"
        )
    return E, N


def _one_hot(name: str, rank_of: np.ndarray, N: int) -> Placement:
    E = rank_of.shape[0]
    share = np.zeros((E, N))
    share[np.arange(E), rank_of] = 1.0
    return Placement(name, N, share, np.ones(E, dtype=np.int64), np.bincount(rank_of, minlength=N).astype(np.int64))


def contiguous(E: int, N: int) -> Placement:
    """Expert e on rank floor(e*N/E) (E=5, N=2 -> ranks [0, 0, 0, 1, 1]); N <= E."""
    E, N = _check_sizes(E, N)
    return _one_hot("contiguous", np.arange(E, dtype=np.int64) * N // E, N)


def round_robin(E: int, N: int) -> Placement:
    """Expert e on rank e mod N (E=5, N=2 -> ranks [0, 1, 0, 1, 0]); N <= E."""
    E, N = _check_sizes(E, N)
    return _one_hot("round_robin", np.arange(E, dtype=np.int64) % N, N)


def balanced_packing(w, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack items w[X, n] into num_packs packs of exactly n/num_packs items, per row X.

    Greedy: items by descending weight (ties: lower index first) each go to the least-loaded pack
    that still has a free slot (ties: lower pack index). With two items per pack this pairs the
    i-th heaviest with the i-th lightest, which is optimal; with one item per pack, item i goes to
    pack i. Returns (pack[X, n], slot[X, n]): the pack of each item and its position inside the pack.
    """
    w = np.asarray(w, dtype=np.float64)
    X, n = w.shape
    assert n % num_packs == 0, (n, num_packs)
    cap = n // num_packs
    if cap == 1:
        ar = np.broadcast_to(np.arange(n), (X, n)).copy()
        return ar, np.zeros((X, n), dtype=np.int64)
    rows = np.arange(X)
    order = np.argsort(-w, axis=1, kind="stable")
    loads = np.zeros((X, num_packs))
    filled = np.zeros((X, num_packs), dtype=np.int64)
    pack = np.empty((X, n), dtype=np.int64)
    slot = np.empty((X, n), dtype=np.int64)
    for j in range(n):
        item = order[:, j]
        p = np.where(filled < cap, loads, np.inf).argmin(axis=1)
        pack[rows, item] = p
        slot[rows, item] = filled[rows, p]
        loads[rows, p] += w[rows, item]
        filled[rows, p] += 1
    return pack, slot


def replicate_experts(w, num_physical: int) -> tuple[np.ndarray, np.ndarray]:
    """Replicate the n logical experts of each row of w[X, n] into num_physical physical experts.

    Greedy: each of the num_physical - n extra replicas goes to the expert with the highest load per
    replica w / count (ties: lower index). Returns (phys2log[X, num_physical], count[X, n]); the
    first n physical experts are the logical ones in order, the extra replicas follow.
    """
    w = np.asarray(w, dtype=np.float64)
    X, n = w.shape
    rows = np.arange(X)
    count = np.ones((X, n), dtype=np.int64)
    phys2log = np.empty((X, num_physical), dtype=np.int64)
    phys2log[:, :n] = np.arange(n)
    for i in range(n, num_physical):
        e = (w / count).argmax(axis=1)
        phys2log[:, i] = e
        count[rows, e] += 1
    return phys2log, count


def _check_eplb(E: int, N: int, R: int, nodes: int, groups: int | None) -> None:
    if R < 0:
        raise DodocoError(f"num_redundant must be >= 0, got {R}")
    if N < 1 or nodes < 1 or (groups is not None and groups < 1):
        raise DodocoError(f"ranks, nodes and groups must be >= 1, got N={N}, num_nodes={nodes}, num_groups={groups}")
    if (E + R) % N:
        raise DodocoError(
            f"E + num_redundant = {E} + {R} = {E + R} physical experts do not divide "
            f"evenly over N={N} ranks; choose num_redundant so that N divides E + R "
            f"(e.g. {R + (-(E + R)) % N})"
        )
    if N % nodes:
        raise DodocoError(f"N={N} ranks do not divide over num_nodes={nodes} nodes")
    if groups is not None and (E % groups or groups % nodes):
        raise DodocoError(f"num_groups={groups} must divide E={E} experts and be a multiple of num_nodes={nodes}")


def _eplb_copies(w: np.ndarray, N: int, R: int, nodes: int, groups: int) -> np.ndarray:
    """EPLB on rows of w[X, E] -> copies[X, E, N] (replicas of expert e on rank r)."""
    X, E = w.shape
    gsize, per_node, ranks_per_node = E // groups, E // nodes, N // nodes
    # 1. pack groups onto nodes; experts of each node in (node, group slot, expert in group) order
    gpack, gslot = balanced_packing(w.reshape(X, groups, gsize).sum(-1), nodes)
    pos = (gpack * (groups // nodes) + gslot)[:, :, None] * gsize + np.arange(gsize)  # [X, G, gs]
    node_log = np.argsort(pos.reshape(X, E), axis=1)  # [X, E]: logical expert at node-major slot
    node_log = node_log.reshape(X * nodes, per_node)
    wn = np.take_along_axis(w, node_log.reshape(X, E), axis=1).reshape(X * nodes, per_node)
    # 2. replicate inside each node, 3. pack the node's physical experts onto its ranks
    phys2log, count = replicate_experts(wn, (E + R) // nodes)
    phys_w = np.take_along_axis(wn / count, phys2log, axis=1)
    rank, _ = balanced_packing(phys_w, ranks_per_node)
    rank = rank + (np.arange(X * nodes) % nodes * ranks_per_node)[:, None]
    logical = np.take_along_axis(node_log, phys2log, axis=1)  # [X*nodes, phys per node]
    copies = np.zeros((X, E, N), dtype=np.int64)
    layer = np.repeat(np.arange(X), nodes)[:, None]
    np.add.at(copies, (np.broadcast_to(layer, logical.shape), logical, rank), 1)
    return copies


def _from_copies(name: str, copies: np.ndarray, nodes: int) -> Placement:
    replicas = copies.sum(axis=-1)
    N = copies.shape[-1]
    return Placement(
        name,
        N,
        copies / replicas[..., None],
        replicas,
        copies.sum(axis=-2),
        np.arange(N, dtype=np.int64) // (N // nodes) if nodes > 1 else None,
    )


def eplb_layers(
    load, N: int, num_redundant: int = 0, num_nodes: int = 1, num_groups: int | None = None, hierarchical: bool = False
) -> Placement:
    """EPLB fitted per layer: load[L, E] (tokens per expert per layer) -> Placement share[L, E, N].

    hierarchical=False: global policy (replicate and pack over all N ranks, nodes ignored).
    hierarchical=True: pack num_groups contiguous expert groups (default E groups of one expert)
    onto num_nodes nodes, then replicate and pack within each node (ranks r of node r // (N/nodes)).
    Errors name the numbers when (E + R) % N != 0, N % nodes != 0 or groups do not fit.
    """
    w = np.asarray(load, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] == 0:
        raise DodocoError(f"load must have shape [L, E], got shape {w.shape}")
    E, N, R = w.shape[1], int(N), int(num_redundant)
    groups = (E if num_groups is None else int(num_groups)) if hierarchical else None
    _check_eplb(E, N, R, int(num_nodes), groups)
    nodes = int(num_nodes) if hierarchical else 1
    p = _from_copies("eplb", _eplb_copies(w, N, R, nodes, groups or 1), nodes)
    if not hierarchical and num_nodes > 1:
        p = p.with_nodes(np.arange(N, dtype=np.int64) // (N // int(num_nodes)))
    return p


def eplb(
    load, N: int, num_redundant: int = 0, num_nodes: int = 1, num_groups: int | None = None, hierarchical: bool = False
) -> Placement:
    """EPLB for one layer: load[E] or load[steps, E] (summed over steps) -> Placement share[E, N].

    See eplb_layers for the policy and the errors.
    """
    w = np.asarray(load, dtype=np.float64)
    if w.ndim == 2:
        w = w.sum(axis=0)
    if w.ndim != 1:
        raise DodocoError(f"load must have shape [E] or [steps, E], got shape {np.shape(load)}")
    return eplb_layers(w[None], N, num_redundant, num_nodes, num_groups, hierarchical).layer(0)


def stack_layers(placements) -> Placement:
    """Stack per-layer placements (same N, E, name) into one Placement with share[L, E, N]."""
    ps = list(placements)
    first = ps[0]
    return Placement(
        first.name,
        first.num_ranks,
        np.stack([p.share for p in ps]),
        np.stack([p.replicas for p in ps]),
        np.stack([p.slots_per_rank for p in ps]),
        first.rank_node,
    )
