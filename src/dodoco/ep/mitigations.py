"""Mitigations of the dispatch straggler, each measured as the fraction of the problem it removes.

For a ratio metric x >= 1 (receiver skew, max/mean) the straggler is x - 1 and a mitigation
removes (x_base - x_mit) / (x_base - 1) of it; for bytes it removes (b_base - b_mit) / b_base; for
the local fraction it makes (l_mit - l_base) / (1 - l_base) of the remote traffic local.
docs/ep.md derives each mitigation:

(a) ``adaptive_relayout``: EPLB with 0..E/4 redundant experts, refitted every window of W steps on
    the previous window, evaluated on the next (per-physical-expert max/mean: a replica's load).
(b) ``sequence_placement``: assign each step's sequences to source ranks greedily so that tokens'
    experts live on their own rank; local fraction and max send/recv vs the seeded layout.
(c) ``hierarchical_dispatch``: two-level dispatch sends a token once per destination node; from
    counts an upper bound (min(tokens, assignments) per source rank and node), from traces exact.
(d) ``topology_mapping``: the rank-to-node mapping (local search over swaps) that minimises the
    max inter-node bytes per node, fitted on some steps and evaluated on others.

Every function returns rows {mitigation, setting, metric, base, mitigated, fraction_removed, bound}
(model-level: mean over layers and evaluation steps); ``mitigation_table`` makes a pyarrow table.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP
ranks, B sequences per rank per step, G GPUs per node.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dodoco.ep.loads import RankMap, replica_max_mean, skew
from dodoco.ep.layout import Placement, eplb_layers
from dodoco.ep.placements import build_placement
from dodoco.ep.steps import require_steps, source_of, step_order, unit_steps
from dodoco.ep.traffic import send_recv, send_recv_local, token_destinations
from dodoco.errors import DodocoError

__all__ = ["MITIGATION_COLUMNS", "adaptive_relayout", "best_rank_nodes", "fraction_removed",
           "hierarchical_dispatch", "mitigation_table", "node_traffic", "redundant_sweep",
           "sequence_placement", "topology_mapping"]

MITIGATION_COLUMNS = ("mitigation", "setting", "metric", "base", "mitigated", "fraction_removed",
                      "bound")


def fraction_removed(base, mitigated, kind: str = "ratio") -> float:
    """Fraction of the problem removed: kind "ratio" (x >= 1): (b - m) / (b - 1); "bytes":
    (b - m) / b; "local" (a fraction that should rise): (m - b) / (1 - b). NaN when b has none."""
    b, m = float(base), float(mitigated)
    den = {"ratio": b - 1.0, "bytes": b, "local": 1.0 - b}[kind]
    num = {"ratio": b - m, "bytes": b - m, "local": m - b}[kind]
    return num / den if abs(den) > 1e-12 else float("nan")


def _row(mitigation, setting, metric, base, mit, kind, bound="exact") -> dict:
    return {"mitigation": mitigation, "setting": str(setting), "metric": metric,
            "base": float(base), "mitigated": float(mit),
            "fraction_removed": fraction_removed(base, mit, kind), "bound": bound}


def _mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def redundant_sweep(E: int, N: int, max_settings: int = 5) -> list[int]:
    """Redundant-expert counts R in [0, E/4] with N dividing E + R, at most max_settings of them
    evenly spaced (always the smallest). Empty when even the smallest exceeds E/4."""
    r = list(range((-E) % N, E // 4 + 1, N))
    if len(r) <= max_settings:
        return r
    pick = np.unique(np.linspace(0, len(r) - 1, max_settings).round().astype(int))
    return [r[i] for i in pick]


def _steps(counts, N: int, B: int, seed: int) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 3:
        raise DodocoError(f"counts must have shape [S, L, E], got shape {counts.shape}")
    require_steps(counts.shape[0], N, B)
    return source_of(counts, seed).steps(N * B)


def adaptive_relayout(counts, N: int, B: int = 1, redundant=None, window: int = 8,
                      max_fits: int = 16, seed: int = 0) -> list[dict]:
    """(a) EPLB refitted on the previous ``window`` steps, evaluated on the next ``window``.

    Steps of N*B sequences (seeded order) are cut into windows; at most max_fits windows (evenly
    spaced) are evaluated, each with EPLB fitted on the window before it. Base: contiguous
    placement on the same steps. Metrics: receiver_skew and max_mean (base: per expert;
    mitigated: per physical expert, replica_max_mean). redundant: R values (redundant_sweep).
    """
    steps = _steps(counts, N, B, seed)
    E, W = steps.shape[-1], int(window)
    n_win = steps.shape[0] // W
    if n_win < 2:
        raise DodocoError(f"adaptive relayout needs 2 windows of {W} steps of {N * B} sequences "
                          f"({2 * W * N * B} sequences), have {steps.shape[0]} steps")
    wins = np.unique(np.linspace(1, n_win - 1, min(max_fits, n_win - 1)).round().astype(int))
    ev = np.concatenate([steps[w * W:(w + 1) * W] for w in wins])
    base = RankMap(build_placement("contiguous", E, N)) if N <= E else None
    base_rho = _mean(skew(base.loads(ev))) if base else float("nan")
    base_mm = _mean(replica_max_mean(ev, base.placement)) if base else float("nan")
    rows = []
    for R in (redundant_sweep(E, N) if redundant is None else redundant):
        rho, mm = [], []
        for w in wins:
            p = eplb_layers(steps[(w - 1) * W:w * W].sum(axis=0), N, R)
            block = steps[w * W:(w + 1) * W]
            rho.append(skew(RankMap(p).loads(block)))
            mm.append(replica_max_mean(block, p))
        setting = f"redundant={R},window={W}"
        rows.append(_row("adaptive_relayout", setting, "receiver_skew", base_rho,
                         _mean(np.concatenate(rho)), "ratio"))
        rows.append(_row("adaptive_relayout", setting, "max_mean", base_mm,
                         _mean(np.concatenate(mm)), "ratio"))
    return rows


def _greedy_assign(A: np.ndarray, B: int) -> np.ndarray:
    """Sequences to ranks, B each, greedily: A[P, N] local assignments of sequence s on rank r.

    Sequences in order of descending best-rank preference (max A - mean A; ties: index) each
    take their best rank with room (ties: lower rank). Returns rank[P]."""
    P, N = A.shape
    pref = A.max(axis=1) - A.mean(axis=1)
    room = np.full(N, B)
    rank = np.empty(P, dtype=np.int64)
    for s in np.argsort(-pref, kind="stable"):
        r = int(np.argmax(np.where(room > 0, A[s], -np.inf)))
        rank[s], room[r] = r, room[r] - 1
    return rank


def _traffic_stats(counts, order, N: int, B: int, rmap: RankMap) -> dict[str, np.ndarray]:
    """Send/receive statistics per step and layer of sequences counts[order] -> {name: [n, L]}."""
    src = source_of(counts, order=order)
    ranks, totals = src.ranks(N, B), src.totals(N, B)
    local = rmap.local(ranks, layers=True, dtype=src.dtype(B)).astype(np.int64)  # [n, N, L]
    R = rmap.loads(src.steps(N * B), dtype=src.dtype(N * B)).astype(np.int64)  # [n, L, N]
    send, recv = send_recv_local(np.swapaxes(totals, 1, 2), R, np.swapaxes(local, 1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"local_fraction": local.sum(axis=1) / totals.sum(axis=1),
                "max_send": send.max(axis=-1), "max_recv": recv.max(axis=-1),
                "send_max_mean": skew(send), "recv_max_mean": skew(recv)}


def sequence_placement(counts, N: int, B: int, placement: Placement | None = None,
                       seed: int = 0, hidden: int = 1, dtype_bytes: int = 1) -> list[dict]:
    """(b) Place each step's sequences on ranks to raise locality (greedy, B per rank).

    Base: the seeded layout (rank i holds sequences [i*B, (i+1)*B) of the step). Metrics:
    local_fraction, max_send / max_recv (bytes = assignments x hidden x dtype_bytes; default 1 x 1
    = assignments), send/recv max/mean. placement: default contiguous(E, N).
    """
    counts = np.asarray(counts)
    require_steps(counts.shape[0], N, B)
    E = counts.shape[-1]
    rmap = RankMap(placement if placement is not None else build_placement("contiguous", E, N))
    P = N * B
    order = step_order(counts.shape[0], seed)[: counts.shape[0] // P * P]
    # pref[s, r]: assignments sequence s keeps local if placed on rank r (summed over layers)
    pref = rmap.loads(source_of(counts, order=order).level(1)[0]).sum(axis=1)  # [S', N]
    mit = order.copy()
    for t in range(order.shape[0] // P):
        rank = _greedy_assign(pref[t * P:(t + 1) * P], B)
        mit[t * P:(t + 1) * P] = order[t * P:(t + 1) * P][np.argsort(rank, kind="stable")]
    base, new = _traffic_stats(counts, order, N, B, rmap), _traffic_stats(counts, mit, N, B, rmap)
    scale = float(hidden) * float(dtype_bytes)
    kinds = {"local_fraction": ("local", 1.0), "max_send": ("bytes", scale),
             "max_recv": ("bytes", scale), "send_max_mean": ("ratio", 1.0),
             "recv_max_mean": ("ratio", 1.0)}
    setting = f"greedy,B={B},N={N}"
    return [_row("sequence_placement", setting, m, _mean(base[m]) * f, _mean(new[m]) * f, k)
            for m, (k, f) in kinds.items()]


def node_traffic(s, rank_node) -> tuple[np.ndarray, np.ndarray]:
    """Inter-node send/recv per node of rank traffic s[..., N, N] -> (send[..., M], recv[..., M]).

    Node a sends sum_{i in a, j not in a} s[i, j] and receives sum_{i not in a, j in a} s[i, j].
    """
    rank_node = np.asarray(rank_node)
    onehot = (rank_node[:, None] == np.arange(int(rank_node.max()) + 1)).astype(np.float64)
    return send_recv(onehot.T @ np.asarray(s, dtype=np.float64) @ onehot)  # node matrix [..., M, M]


def _nodes_of(N: int, G: int, placement: Placement | None = None) -> np.ndarray:
    if G < 1 or N % G:
        raise DodocoError(f"N={N} ranks do not split into nodes of gpus_per_node={G}")
    if placement is not None and placement.rank_node is not None:
        return placement.rank_node
    return np.arange(N) // G


def _step_traffic(counts, N: int, B: int, placement: Placement, seed: int):
    """Per-copy traffic per step and layer -> (s[n, L, N, N], totals[n, L, N]).

    Row i of s is the rank loads of rank i's tokens: s[i, :] = src[i] @ share (RankMap)."""
    src = source_of(counts, seed)
    s = RankMap(placement).loads(src.ranks(N, B))  # [n, N src, L, N dst]
    return np.swapaxes(s, 1, 2), np.swapaxes(src.totals(N, B), 1, 2)


def _inter_node_rows(setting, bound, flat, hier, scale) -> list[dict]:
    """Rows from (send[n, L, N], recv[n, L, M]) inter-node traffic, flat and two-level."""
    return [_row("hierarchical_dispatch", setting, f"max_inter_node_{d}",
                 _mean(flat[k].max(axis=-1)) * scale, _mean(hier[k].max(axis=-1)) * scale,
                 "bytes", bound) for k, d in ((0, "send"), (1, "recv"))] + [
        _row("hierarchical_dispatch", setting, "total_inter_node", _mean(flat[0].sum(-1)) * scale,
             _mean(hier[0].sum(-1)) * scale, "bytes", bound)]


def hierarchical_dispatch(counts, N: int, B: int, gpus_per_node: int, K: int,
                          placement: Placement | None = None, seed: int = 0, topk=None,
                          offsets=None, hidden: int = 1, dtype_bytes: int = 1) -> list[dict]:
    """(c) Two-level dispatch: inter-node traffic counted once per (token, destination node).

    Base: flat per-expert-copy dispatch (every copy to a rank on another node crosses a NIC).
    From counts[S, L, E] the two-level traffic of source rank i to node m is bounded above by
    min(tokens_i, copies_i->m) (bound "upper"); with token traces topk[T, L, K], offsets[S+1] it
    is counted exactly (distinct (token, node) pairs, bound "exact"). Metrics per step and layer:
    max inter-node send over ranks, max receive over nodes, total; bytes = x hidden x dtype_bytes.
    """
    counts = np.asarray(counts)
    require_steps(counts.shape[0], N, B)
    p = placement if placement is not None else build_placement("contiguous", counts.shape[-1], N)
    node = _nodes_of(N, int(gpus_per_node), p)
    M = int(node.max()) + 1
    remote = node[:, None] != np.arange(M)[None, :]  # [N, M]: node m is remote for rank i
    scale = float(hidden) * float(dtype_bytes)
    setting = f"gpus_per_node={gpus_per_node},N={N},B={B}"
    if topk is not None:
        flat, hier = _trace_node_traffic(topk, offsets, N, B, p, node, seed)
        return _inter_node_rows(setting, "exact", flat, hier, scale)
    s, totals = _step_traffic(counts, N, B, p, seed)
    onehot = (node[:, None] == np.arange(M)).astype(np.float64)
    to_node = (s @ onehot) * remote  # [n, L, N, M] copies from rank i to remote node m
    two = np.minimum(to_node, (totals / K)[..., None]) * remote
    flat = (to_node.sum(-1), to_node.sum(-2))
    hier = (two.sum(-1), two.sum(-2))
    return _inter_node_rows(setting, "upper", flat, hier, scale)


def _trace_node_traffic(topk, offsets, N, B, placement, node, seed):
    """Exact inter-node copies and distinct (token, node) pairs -> ((send, recv), (send, recv))."""
    topk, offsets = np.asarray(topk), np.asarray(offsets, dtype=np.int64)
    S, L, M = offsets.shape[0] - 1, topk.shape[1], int(node.max()) + 1
    unit_step, unit_rank = unit_steps(S, N, B, seed)
    n = S // (N * B)
    seq = np.repeat(np.arange(S), np.diff(offsets))
    tok = np.flatnonzero(unit_step[seq] >= 0)
    step, rank = unit_step[seq[tok]], unit_rank[seq[tok]]
    out = np.zeros((2, n, L, N, M))
    for l in range(L):
        dst = node[token_destinations(topk[tok, l], placement.layer(l), tok)]  # [T', K]
        far = dst != node[rank][:, None]
        dedup = np.sort(np.where(far, dst, -1), axis=1)
        first = np.ones(dedup.shape, dtype=bool)
        first[:, 1:] = dedup[:, 1:] != dedup[:, :-1]
        for j, mask in enumerate((far, first & (dedup >= 0))):
            d = dst if j == 0 else dedup
            key = ((step[:, None] * N + rank[:, None]) * M + d)[mask]
            out[j, :, l] = np.bincount(key, minlength=n * N * M).reshape(n, N, M)
    return ((out[0].sum(-1), out[0].sum(-2)), (out[1].sum(-1), out[1].sum(-2)))


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
    base = _nodes_of(N, G)
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
    vol = s.sum(0) + s.sum(1) - 2 * np.diag(s)
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


def topology_mapping(counts, N: int, B: int, gpus_per_node: int,
                     placement: Placement | None = None, seed: int = 0,
                     method: str = "auto") -> list[dict]:
    """(d) EP-aware topology: fit rank_node on the first half of the steps (summed per-copy
    traffic), evaluate on the second half. Base: contiguous mapping rank // G. Metrics per step
    and layer: max inter-node send and receive over nodes, and the max of both."""
    counts = np.asarray(counts)
    require_steps(counts.shape[0], N, B)
    p = placement if placement is not None else build_placement("contiguous", counts.shape[-1], N)
    G = int(gpus_per_node)
    base = _nodes_of(N, G)
    s, _ = _step_traffic(counts, N, B, p, seed)
    if s.shape[0] < 2:
        raise DodocoError(f"topology mapping needs 2 steps of {N * B} sequences "
                          f"({2 * N * B} sequences), have {counts.shape[0]}")
    half = s.shape[0] // 2
    best = best_rank_nodes(s[:half].sum(axis=(0, 1)), G, method)
    ev = s[half:]
    (bs, br), (ms, mr) = node_traffic(ev, base), node_traffic(ev, best)
    setting = f"gpus_per_node={G},N={N},B={B},map={'-'.join(map(str, best.tolist()))}"
    return [_row("topology_mapping", setting, "max_node_send", _mean(bs.max(-1)),
                 _mean(ms.max(-1)), "bytes"),
            _row("topology_mapping", setting, "max_node_recv", _mean(br.max(-1)),
                 _mean(mr.max(-1)), "bytes"),
            _row("topology_mapping", setting, "max_node_bytes",
                 _mean(np.maximum(bs.max(-1), br.max(-1))),
                 _mean(np.maximum(ms.max(-1), mr.max(-1))), "bytes")]


def mitigation_table(rows, **labels) -> pa.Table:
    """Rows of the mitigation functions -> pyarrow table; labels (model, condition, regime...)
    become constant string columns in front."""
    rows = list(rows)
    cols = {k: pa.array([str(v)] * len(rows), pa.string()) for k, v in labels.items()}
    for c in MITIGATION_COLUMNS:
        vals = [r[c] for r in rows]
        cols[c] = pa.array(vals, pa.float64() if c in ("base", "mitigated", "fraction_removed")
                           else pa.string())
    return pa.table(cols)
