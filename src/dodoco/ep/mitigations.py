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
(d) ``topology_mapping`` (``dodoco.ep.topology``): the rank-to-node mapping (local search over swaps)
    that minimises the max inter-node bytes per node, fitted on some steps and evaluated on others.

Every mitigation takes a ``StepSource`` (``ep.steps``: the run's steps; a window aggregate is one
step, and ``sequence_placement`` and the exact ``hierarchical_dispatch`` need per-unit data).

Every function returns rows {mitigation, setting, metric, base, mitigated, fraction_removed, bound}
(model-level: mean over layers and evaluation steps); ``mitigation_table`` makes a pyarrow table.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP
ranks, B sequences per rank per step, G GPUs per node.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dodoco.ep.layout import Placement, eplb_layers
from dodoco.ep.loads import RankMap, replica_max_mean
from dodoco.ep.placements import build_placement
from dodoco.ep.steps import StepSource
from dodoco.ep.topology import best_rank_nodes, node_traffic, nodes_of, step_traffic
from dodoco.ep.traffic import distinct_destinations, pair_counts, send_recv_local, send_recv_nodes, token_destinations
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import max_mean

__all__ = [
    "MITIGATION_COLUMNS",
    "adaptive_relayout",
    "fraction_removed",
    "hierarchical_dispatch",
    "mitigation_table",
    "redundant_sweep",
    "sequence_placement",
    "topology_mapping",
]

MITIGATION_COLUMNS = ("mitigation", "setting", "metric", "base", "mitigated", "fraction_removed", "bound")


def fraction_removed(base, mitigated, kind: str = "ratio") -> float:
    """Fraction of the problem removed: kind "ratio" (x >= 1): (b - m) / (b - 1); "bytes":
    (b - m) / b; "local" (a fraction that should rise): (m - b) / (1 - b). NaN when b has none."""
    b, m = float(base), float(mitigated)
    den = {"ratio": b - 1.0, "bytes": b, "local": 1.0 - b}[kind]
    num = {"ratio": b - m, "bytes": b - m, "local": m - b}[kind]
    return num / den if abs(den) > 1e-12 else float("nan")


def _row(mitigation, setting, metric, base, mit, kind, bound="exact") -> dict:
    return {
        "mitigation": mitigation,
        "setting": str(setting),
        "metric": metric,
        "base": float(base),
        "mitigated": float(mit),
        "fraction_removed": fraction_removed(base, mit, kind),
        "bound": bound,
    }


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


def _steps(source: StepSource, N: int, B: int) -> np.ndarray:
    source.check(N, B)
    return source.steps(N * B)


def _experts(source: StepSource) -> int:
    return int(source.level(1).shape[-1])


def adaptive_relayout(
    source: StepSource, N: int, B: int = 1, redundant=None, window: int = 8, max_fits: int = 16
) -> list[dict]:
    """(a) EPLB refitted on the previous ``window`` steps, evaluated on the next ``window``.

    Steps of N*B sequences (seeded order) are cut into windows; at most max_fits windows (evenly
    spaced) are evaluated, each with EPLB fitted on the window before it. Base: contiguous
    placement on the same steps. Metrics: receiver_skew and max_mean (base: per expert;
    mitigated: per physical expert, replica_max_mean). redundant: R values (redundant_sweep).
    """
    steps = _steps(source, N, B)
    E, W = steps.shape[-1], int(window)
    n_win = steps.shape[0] // W
    if n_win < 2:
        raise DodocoError(
            f"adaptive relayout needs 2 windows of {W} steps of {N * B} sequences "
            f"({2 * W * N * B} sequences), have {steps.shape[0]} steps"
        )
    wins = np.unique(np.linspace(1, n_win - 1, min(max_fits, n_win - 1)).round().astype(int))
    ev = np.concatenate([steps[w * W : (w + 1) * W] for w in wins])
    base = RankMap(build_placement("contiguous", E, N)) if N <= E else None
    base_rho = _mean(max_mean(base.loads(ev))) if base else float("nan")
    base_mm = _mean(replica_max_mean(ev, base.placement)) if base else float("nan")
    rows = []
    for R in redundant_sweep(E, N) if redundant is None else redundant:
        rho, mm = [], []
        for w in wins:
            p = eplb_layers(steps[(w - 1) * W : w * W].sum(axis=0), N, R)
            block = steps[w * W : (w + 1) * W]
            rho.append(max_mean(RankMap(p).loads(block)))
            mm.append(replica_max_mean(block, p))
        setting = f"redundant={R},window={W}"
        rows.append(_row("adaptive_relayout", setting, "receiver_skew", base_rho, _mean(np.concatenate(rho)), "ratio"))
        rows.append(_row("adaptive_relayout", setting, "max_mean", base_mm, _mean(np.concatenate(mm)), "ratio"))
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


def _traffic_stats(src: StepSource, N: int, B: int, rmap: RankMap) -> dict[str, np.ndarray]:
    """Send/receive statistics per step and layer of a source's steps -> {name: [n, L]}."""
    ranks, totals = src.ranks(N, B), src.totals(N, B)
    local = rmap.local(ranks, layers=True, dtype=src.dtype(B)).astype(np.int64)  # [n, N, L]
    R = rmap.loads(src.steps(N * B), dtype=src.dtype(N * B)).astype(np.int64)  # [n, L, N]
    send, recv = send_recv_local(np.swapaxes(totals, 1, 2), R, np.swapaxes(local, 1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "local_fraction": local.sum(axis=1) / totals.sum(axis=1),
            "max_send": send.max(axis=-1),
            "max_recv": recv.max(axis=-1),
            "send_max_mean": max_mean(send),
            "recv_max_mean": max_mean(recv),
        }


def sequence_placement(
    source: StepSource, N: int, B: int, placement: Placement | None = None, hidden: int = 1, dtype_bytes: int = 1
) -> list[dict]:
    """(b) Place each step's sequences on ranks to raise locality (greedy, B per rank).

    Base: the source's layout (rank i holds sequences [i*B, (i+1)*B) of the step). Metrics:
    local_fraction, max_send / max_recv (bytes = assignments x hidden x dtype_bytes; default 1 x 1
    = assignments), send/recv max/mean. placement: default contiguous(E, N).
    """
    source.check(N, B)
    n = source.holders(N, B).shape[0]  # per-unit data (a window aggregate has none)
    rmap = RankMap(placement if placement is not None else build_placement("contiguous", _experts(source), N))
    P = N * B
    units = source.level(1)  # [blocks, U, L, E] in step order
    # pref[s, r]: assignments unit s keeps local if placed on rank r (summed over layers)
    pref = rmap.loads(units[0, : n * P]).sum(axis=1)  # [n*P, N]
    perm = np.arange(units.shape[1])
    for t in range(n):
        rank = _greedy_assign(pref[t * P : (t + 1) * P], B)
        perm[t * P : (t + 1) * P] = t * P + np.argsort(rank, kind="stable")
    base = _traffic_stats(source, N, B, rmap)
    new = _traffic_stats(source.like(units[:, perm]), N, B, rmap)
    scale = float(hidden) * float(dtype_bytes)
    kinds = {
        "local_fraction": ("local", 1.0),
        "max_send": ("bytes", scale),
        "max_recv": ("bytes", scale),
        "send_max_mean": ("ratio", 1.0),
        "recv_max_mean": ("ratio", 1.0),
    }
    setting = f"greedy,B={B},N={N}"
    return [
        _row("sequence_placement", setting, m, _mean(base[m]) * f, _mean(new[m]) * f, k) for m, (k, f) in kinds.items()
    ]


def _inter_node_rows(setting, bound, flat, hier, scale) -> list[dict]:
    """Rows from (send[n, L, N], recv[n, L, M]) inter-node traffic, flat and two-level."""
    return [
        _row(
            "hierarchical_dispatch",
            setting,
            f"max_inter_node_{d}",
            _mean(flat[k].max(axis=-1)) * scale,
            _mean(hier[k].max(axis=-1)) * scale,
            "bytes",
            bound,
        )
        for k, d in ((0, "send"), (1, "recv"))
    ] + [
        _row(
            "hierarchical_dispatch",
            setting,
            "total_inter_node",
            _mean(flat[0].sum(-1)) * scale,
            _mean(hier[0].sum(-1)) * scale,
            "bytes",
            bound,
        )
    ]


def hierarchical_dispatch(
    source: StepSource,
    N: int,
    B: int,
    gpus_per_node: int,
    K: int,
    placement: Placement | None = None,
    topk=None,
    offsets=None,
    hidden: int = 1,
    dtype_bytes: int = 1,
) -> list[dict]:
    """(c) Two-level dispatch: inter-node traffic counted once per (token, destination node).

    Base: flat per-expert-copy dispatch (every copy to a rank on another node crosses a NIC).
    From the source's counts the two-level traffic of source rank i to node m is bounded above by
    min(tokens_i, copies_i->m) (bound "upper"); with token traces topk[T, L, K], offsets[S+1] of the
    source's units it is counted exactly (distinct (token, node) pairs, bound "exact"). Metrics per
    step and layer: max inter-node send over ranks, max receive over nodes, total; bytes = x hidden
    x dtype_bytes.
    """
    source.check(N, B)
    p = placement if placement is not None else build_placement("contiguous", _experts(source), N)
    node = nodes_of(N, int(gpus_per_node), p)
    M = int(node.max()) + 1
    scale = float(hidden) * float(dtype_bytes)
    setting = f"gpus_per_node={gpus_per_node},N={N},B={B}"
    if topk is not None:
        flat, hier = _trace_node_traffic(source, topk, offsets, N, B, p, node)
        return _inter_node_rows(setting, "exact", flat, hier, scale)
    remote = node[:, None] != np.arange(M)[None, :]  # [N, M]: node m is remote for rank i
    s, totals = step_traffic(source, N, B, p)
    onehot = (node[:, None] == np.arange(M)).astype(np.float64)
    to_node = (s @ onehot) * remote  # [n, L, N, M] copies from rank i to remote node m
    two = np.minimum(to_node, (totals / K)[..., None]) * remote
    return _inter_node_rows(setting, "upper", send_recv_nodes(to_node), send_recv_nodes(two), scale)


def _trace_node_traffic(source: StepSource, topk, offsets, N, B, placement, node):
    """Exact inter-node copies and distinct (token, node) pairs -> ((send, recv), (send, recv))."""
    topk, offsets = np.asarray(topk), np.asarray(offsets, dtype=np.int64)
    S, L, M = offsets.shape[0] - 1, topk.shape[1], int(node.max()) + 1
    unit_step, unit_rank = source.unit_steps(N, B)
    unit_step = np.concatenate([unit_step, np.full(max(0, S - unit_step.size), -1)])[:S]
    unit_rank = np.concatenate([unit_rank, np.full(max(0, S - unit_rank.size), -1)])[:S]
    n = source.n_steps(N * B)
    seq = np.repeat(np.arange(S), np.diff(offsets))
    tok = np.flatnonzero(unit_step[seq] >= 0)
    key = unit_step[seq[tok]] * N + unit_rank[seq[tok]]
    out = np.zeros((2, n, L, N, M))
    for l in range(L):
        dst = node[token_destinations(topk[tok, l], placement.layer(l), tok)]  # [T', K]
        far = dst != node[unit_rank[seq[tok]]][:, None]
        d, first = distinct_destinations(np.where(far, dst, -1))
        out[0, :, l] = pair_counts(key, dst, n * N, M, far).reshape(n, N, M)
        out[1, :, l] = pair_counts(key, np.maximum(d, 0), n * N, M, first & (d >= 0)).reshape(n, N, M)
    return send_recv_nodes(out[0]), send_recv_nodes(out[1])


def topology_mapping(
    source: StepSource, N: int, B: int, gpus_per_node: int, placement: Placement | None = None, method: str = "auto"
) -> list[dict]:
    """(d) EP-aware topology: fit rank_node on the first half of the steps (summed per-copy
    traffic), evaluate on the second half. Base: contiguous mapping rank // G. Metrics per step
    and layer: max inter-node send and receive over nodes, and the max of both."""
    source.check(N, B)
    p = placement if placement is not None else build_placement("contiguous", int(source.level(1).shape[-1]), N)
    G = int(gpus_per_node)
    base = nodes_of(N, G)
    s, _ = step_traffic(source, N, B, p)
    if s.shape[0] < 2:
        raise DodocoError(
            f"topology mapping needs 2 steps of {N * B} sequences "
            f"({2 * N * B} sequences), the source has {s.shape[0]} step(s)"
        )
    half = s.shape[0] // 2
    best = best_rank_nodes(s[:half].sum(axis=(0, 1)), G, method)
    ev = s[half:]
    (bs, br), (ms, mr) = node_traffic(ev, base), node_traffic(ev, best)
    setting = f"gpus_per_node={G},N={N},B={B},map={'-'.join(map(str, best.tolist()))}"
    return [
        _row("topology_mapping", setting, "max_node_send", _mean(bs.max(-1)), _mean(ms.max(-1)), "bytes"),
        _row("topology_mapping", setting, "max_node_recv", _mean(br.max(-1)), _mean(mr.max(-1)), "bytes"),
        _row(
            "topology_mapping",
            setting,
            "max_node_bytes",
            _mean(np.maximum(bs.max(-1), br.max(-1))),
            _mean(np.maximum(ms.max(-1), mr.max(-1))),
            "bytes",
        ),
    ]


def mitigation_table(rows, **labels) -> pa.Table:
    """Rows of the mitigation functions -> pyarrow table; labels (model, condition, regime...)
    become constant string columns in front."""
    rows = list(rows)
    cols = {k: pa.array([str(v)] * len(rows), pa.string()) for k, v in labels.items()}
    for c in MITIGATION_COLUMNS:
        vals = [r[c] for r in rows]
        cols[c] = pa.array(vals, pa.float64() if c in ("base", "mitigated", "fraction_removed") else pa.string())
    return pa.table(cols)
