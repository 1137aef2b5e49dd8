"""What a replay sends: all_to_all_single split sizes of every (step, layer), from routing counts.

Pure numpy, no torch. A step is N*B sequences in the fixed seeded order (``step_order``); rank i
holds sequences [i*B, (i+1)*B) of the step (``dodoco.ep.steps``: ``StepSource.ranks``). The per-expert-copy
traffic matrix s[i, j] (``traffic_matrix``) rounded to integers (``split_sizes``) gives the rows rank
i sends to rank j: one H-wide row per assignment. Row i of the split matrix is rank i's input
split sizes, column j rank j's output split sizes. docs/dispatch.md derives every quantity.

Controls built from a real case, each with the same per-rank send totals (so the same bytes):

- ``balanced_splits``: every source rank spreads its rows evenly over the N destinations;
- ``skewed_splits`` (pattern hot-receiver): every source rank sends rho/N of its rows to one hot rank
  and spreads the rest evenly over the others, so the hot rank receives rho times the mean;
- ``hot_pair_splits`` (pattern hot-pair): every source spreads its rows evenly and one source-
  destination pair carries the extra rows that give the hot rank receiver skew rho, at the same mean
  rows per rank (synthetic, for calibration).

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step, T tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dodoco.ep.steps import spread
from dodoco.errors import DodocoError

__all__ = [
    "ReplayCase",
    "balanced_splits",
    "case_bytes",
    "floor_ms",
    "hot_pair_splits",
    "layer_indices",
    "run_cases",
    "skewed_splits",
    "sweep_sizes",
    "synth_topk",
]


@dataclass(frozen=True)
class ReplayCase:
    """One all-to-all to replay: ``splits[i, j]`` rows (per-expert copies) from rank i to rank j, int64 [N, N].

    condition: the data condition ("prose", "mock-uniform", ...) or control ("balanced", "grid-hot-pair").
    kind: "real", "mock", "balanced", "skew" or "grid"; pattern: "routing", "uniform", "hot-receiver"
    or "hot-pair"; rho: the target receiver skew of a synthetic case (None for routing).
    step, layer: where the case comes from (-1: none). model: the run's model id ("" for controls).
    src: int64 [N, E] per-source-rank expert counts and tokens: int64 [N] tokens per rank (None
    when unknown). topk: per source rank i, int64 [T_i, K] physical expert ids (rank r holds
    physical experts [sum(slots[:r]), sum(slots[:r+1]))), set by ``dodoco.replay.routing``; slots:
    int64 [N] physical experts per rank; topk_source: "traces" or "synthesised from counts".
    """

    condition: str
    kind: str
    step: int
    layer: int
    splits: np.ndarray = field(repr=False)
    src: np.ndarray | None = field(default=None, repr=False)
    tokens: np.ndarray | None = field(default=None, repr=False)
    pattern: str = "routing"
    rho: float | None = None
    model: str = ""
    topk: tuple | None = field(default=None, repr=False)
    slots: np.ndarray | None = field(default=None, repr=False)
    topk_source: str = ""

    @property
    def N(self) -> int:
        return int(self.splits.shape[0])

    @property
    def K(self) -> int:
        return int(self.topk[0].shape[1]) if self.topk else 0

    @property
    def E(self) -> int:
        """Physical experts (routed experts when every expert has one copy)."""
        return int(np.sum(self.slots)) if self.slots is not None else 0


def layer_indices(layers, L: int) -> list[int]:
    """MoE layer indices to replay (None: all L), each checked to be in 0..L-1."""
    out = list(range(L)) if layers is None else [int(x) for x in layers]
    bad = [x for x in out if not 0 <= x < L]
    if bad:
        raise DodocoError(f"--layers {bad} out of range: the run has L={L} MoE layers (0..{L - 1})")
    return out


def run_cases(
    source,
    N: int,
    B: int,
    *,
    condition: str,
    kind: str,
    placement=None,
    layers=None,
    max_steps: int | None = None,
    what: str = "the run",
) -> list[ReplayCase]:
    """Replay cases of a run's steps -> [ReplayCase] for every step and chosen layer (step-major).

    source: the steps (``dodoco.ep.steps.StepSource``: ``run_source(run, seed)``, whose window
    aggregate is one step split evenly over the source ranks, or the held-out units' source of
    ``ep.placements.evaluated_source``); rank i of step k sends ``ranks(N, B)[k, i]``.
    placement: a ``dodoco.ep.Placement`` for N ranks (default contiguous). layers: MoE layer
    indices (default all). max_steps: keep the first steps only (default all). ``what`` names the
    units in the error when they hold no step of N*B.
    """
    from dodoco.ep.layout import contiguous
    from dodoco.ep.traffic import split_sizes, traffic_matrix

    source.check(N, B, what)
    ranks = source.ranks(N, B)  # [n, N, L, E]
    n, L, E = ranks.shape[0], ranks.shape[2], ranks.shape[3]
    p = placement if placement is not None else contiguous(E, N)
    if p.num_ranks != N or p.num_experts != E:
        raise DodocoError(
            f"placement is for {p.num_experts} experts on {p.num_ranks} ranks, "
            f"the replay needs {E} experts on {N} ranks"
        )
    n = n if max_steps is None else min(n, int(max_steps))
    cases = []
    for k in range(n):
        for layer in layer_indices(layers, L):
            src = ranks[k, :, layer, :].astype(np.int64)  # [N, E]: rank i's tokens' experts
            cases.append(ReplayCase(condition, kind, k, layer, split_sizes(traffic_matrix(src, p.layer(layer))), src))
    return cases


def balanced_splits(row_totals) -> np.ndarray:
    """Uniform splits with the given per-source totals: row_totals[N] -> int64 [N, N].

    Row i spreads row_totals[i] evenly over the N destinations; the remainder units of row i go to
    ranks i+1, i+2, ... so the columns stay balanced too. Row sums equal row_totals exactly.
    """
    t = np.asarray(row_totals, dtype=np.int64)
    N = t.shape[0]
    return np.stack([spread(int(t[i]), N, i + 1) for i in range(N)])


def skewed_splits(row_totals, rho: float, hot: int = 0) -> np.ndarray:
    """Splits whose receiver skew is rho: row_totals[N] -> int64 [N, N], 1 <= rho <= N.

    Every source i sends round(rho/N * row_totals[i]) rows to rank ``hot`` and spreads the rest
    evenly over the other N-1 ranks, so the hot rank receives rho times the mean rank load
    (up to rounding). rho = 1 is ``balanced_splits`` up to rounding.
    """
    t = np.asarray(row_totals, dtype=np.int64)
    N = t.shape[0]
    if not 1.0 <= rho <= N:
        raise DodocoError(
            f"receiver skew {rho} is outside [1, N={N}]: the hot rank can receive at most everything (skew N)"
        )
    out = np.zeros((N, N), dtype=np.int64)
    others = [j for j in range(N) if j != hot]
    for i in range(N):
        h = int(round(rho / N * int(t[i])))
        out[i, hot] = h
        if others:
            out[i, others] = spread(int(t[i]) - h, N - 1, i)
        else:
            out[i, hot] = t[i]
    return out


def hot_pair_splits(row_total: int, N: int, rho: float, K: int = 1, hot: int = 0) -> np.ndarray:
    """Splits of mean ``row_total`` rows per rank where one pair makes receiver skew rho -> int64 [N, N].

    Every source spreads its b rows evenly over the N ranks and source (hot+1) mod N sends x more rows
    to ``hot``, with x = (rho - 1) P N / (N - 1) and the rest, N P - x, shared by the sources as evenly
    as whole tokens allow (b = P (N - rho) / (N - 1) each), for P = row_total: the mean rows per rank
    stays P and ``hot`` receives rho x the mean, up to rounding to whole tokens of K rows.
    1 <= rho <= N; N = 1 gives [[P]].
    """
    N, P = int(N), int(row_total)
    if not 1.0 <= rho <= max(N, 1):
        raise DodocoError(
            f"receiver skew {rho} is outside [1, N={N}]: the hot rank can receive at most everything (skew N)"
        )
    if N == 1:
        return np.array([[P]], dtype=np.int64)
    tokens = int(round(N * P / K))
    x_tok = int(round((rho - 1) * (P / K) * N / (N - 1)))
    out = balanced_splits(spread(tokens - x_tok, N, 0) * K)
    out[(hot + 1) % N, hot] += x_tok * K
    return out


def case_bytes(splits, row_bytes: int) -> dict:
    """Byte counts of one case: splits[N, N] rows, ``row_bytes`` = H * bytes per element.

    per_rank_bytes: mean over ranks of the rank's whole input buffer (diagonal included), the
    nccl-tests "size" of alltoall; send_off/recv_off: bytes that cross links (diagonal excluded, from
    ``dodoco.ep.traffic.send_recv``), max and mean over ranks; pair_max: the largest off-diagonal
    s[i, j]; receiver_skew: max/mean of column sums (rows received, diagonal included).
    """
    from dodoco.ep.traffic import off_diagonal, send_recv
    from dodoco.metrics.imbalance import max_mean

    s = np.asarray(splits, dtype=np.float64) * row_bytes
    N = s.shape[0]
    S_off, R_off = send_recv(s)
    return {
        "bytes_total": float(s.sum()),
        "per_rank_bytes": float(s.sum() / N),
        "send_off_max": float(S_off.max()),
        "recv_off_max": float(R_off.max()),
        "off_mean": float(S_off.mean()),
        "pair_max": float(off_diagonal(s).max()) if N > 1 else 0.0,
        "receiver_skew": float(max_mean(s.sum(0))),
    }


def floor_ms(b: dict, link_GBps: float) -> float:
    """Physical floor of a case: the busiest rank's off-diagonal bytes sent or received over the
    per-direction link bandwidth; b from ``case_bytes`` -> milliseconds."""
    return max(b["send_off_max"], b["recv_off_max"]) / (float(link_GBps) * 1e9) * 1e3


def sweep_sizes(min_bytes: int = 1 << 10, max_bytes: int = 512 << 20) -> list[int]:
    """Per-rank buffer sizes of the uniform sweep: powers of two from min_bytes to max_bytes."""
    if min_bytes < 1 or max_bytes < min_bytes:
        raise DodocoError(f"sweep sizes {min_bytes}..{max_bytes} bytes: need 1 <= min <= max")
    out, b = [], 1 << int(np.ceil(np.log2(min_bytes)))
    while b <= max_bytes:
        out.append(b)
        b <<= 1
    return out


def synth_topk(src_counts, T: int, K: int) -> np.ndarray:
    """Token-level top-k consistent with per-expert counts: src_counts[E] -> int64 [T, K].

    Needs sum(src_counts) == T*K and every count <= T (an expert is chosen at most once per token).
    The assignments sorted by expert are dealt to tokens round-robin (assignment a to token a mod T),
    so a run of c_e <= T equal experts lands on c_e distinct tokens and every token gets K distinct
    experts. Used to drive dispatchers that take top-k indices (DeepEP) from counts alone.
    """
    c = np.asarray(src_counts, dtype=np.int64)
    if int(c.sum()) != T * K:
        raise DodocoError(f"counts sum to {int(c.sum())}, expected T*K = {T}*{K} = {T * K}")
    if (c > T).any():
        raise DodocoError(f"an expert has {int(c.max())} assignments but there are only T={T} tokens")
    experts = np.repeat(np.arange(c.shape[0]), c)  # [T*K], sorted by expert
    out = np.empty((T, K), dtype=np.int64)
    a = np.arange(T * K)
    out[a % T, a // T] = experts
    return out
