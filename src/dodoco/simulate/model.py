"""The analytic dispatch-time model: T = alpha + A(S, R) / B_eff, with a weighted max term.

For one AlltoAll with byte matrix b[i, j] (rank i to rank j; b[i, i] stays local and crosses no
link), S_i = sum_{j != i} b[i, j] and R_j = sum_{i != j} b[i, j]. DESIGN.md's starting point is

    T = alpha + max(max_i S_i, max_j R_j) / B_eff

A first measurement on 4 H200s saw receiver skew 2 cost 1.55x, not 2x: the busiest rank does not
set the whole time. The model therefore blends the max with the mean (m = mean_i S_i = mean_j R_j):

    A = w * max(max_i S_i, max_j R_j) + (1 - w) * m,       T = alpha + A / B_eff

w = 1 is the naive max model, w = 0 a pure-volume model. On balanced traffic max = mean, so balanced
data fix alpha and B_eff but say nothing about w; w is fitted on imbalanced replays that are kept
out of the validation (``dodoco.simulate.calibrate``). Where links are per pair (a full NVLink mesh
of 4 GPUs is not a switch) a pair term bounds the time too: T >= alpha + max_{i != j} b[i, j] / B_pair.

Across nodes (``dodoco.simulate.cluster``) the same A is taken separately over the NVLink
(intra-node) and the NIC (inter-node) bytes of each rank, and the slower domain sets the time.
docs/dispatch.md derives each term. Units: bytes, seconds, bytes/second.

Shape legend: N EP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LinkModel", "blend", "fit_line", "fit_weight", "max_mean", "off_diagonal", "predict"]


@dataclass(frozen=True)
class LinkModel:
    """One link domain: alpha (s), B_eff (bytes/s per rank), max weight w, optional pair bandwidth."""

    alpha: float
    beff: float
    w: float = 1.0
    pair_bw: float | None = None


def off_diagonal(b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """b[..., N, N] -> (S[..., N], R[..., N], pair_max[...]) of the bytes that cross links."""
    b = np.asarray(b, dtype=np.float64)
    N = b.shape[-1]
    off = b * (1.0 - np.eye(N))
    return off.sum(-1), off.sum(-2), off.max(axis=(-2, -1))


def blend(S, R, w: float) -> np.ndarray:
    """A = w * max(max S, max R) + (1 - w) * mean S over the last axis -> [...] bytes."""
    M, m = max_mean(S, R)
    return w * M + (1.0 - w) * m


def predict(b, m: LinkModel) -> np.ndarray:
    """Predicted time (s) of AlltoAlls with byte matrices b[..., N, N] on one link domain."""
    S, R, pair = off_diagonal(b)
    t = blend(S, R, m.w) / m.beff
    if m.pair_bw:
        t = np.maximum(t, pair / m.pair_bw)
    return m.alpha + t


def fit_line(x, t, relative: bool = True) -> tuple[float, float]:
    """Least squares t = alpha + x / beff -> (alpha, beff); x bytes, t seconds.

    relative=True weights each point by 1/t (minimises relative error), so small and large sizes
    both count. alpha is clipped at 0 (a negative fixed cost is not physical) and refitted through 0.
    """
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    wt = 1.0 / t if relative else np.ones_like(t)
    X = np.stack([np.ones_like(x), x], axis=1) * wt[:, None]
    (a, slope), *_ = np.linalg.lstsq(X, t * wt, rcond=None)
    if a < 0:
        a, slope = 0.0, float(np.sum(x * t * wt**2) / np.sum((x * wt) ** 2))
    return float(a), float(1.0 / slope)


def max_mean(S, R) -> tuple[np.ndarray, np.ndarray]:
    """(M, m) = (max(max S, max R), mean S) over the last axis of S[..., N], R[..., N]."""
    S, R = np.asarray(S, dtype=np.float64), np.asarray(R, dtype=np.float64)
    return np.maximum(S.max(-1), R.max(-1)), S.mean(-1)


def fit_weight(M, m, t, alpha, beff) -> tuple[float, float]:
    """Fit w in [0, 1] to times t[n] of cases with max term M[n] and mean m[n] -> (w, spread).

    alpha and beff may be scalars or per-case arrays [n] (pooling several N). Minimises the
    relative error sum(((alpha + (w M + (1-w) m)/beff) - t) / t)^2, linear in w. ``spread`` is the
    median over cases of (M - m) / (beff * t), the share of the time the max term can move; near 0
    the data cannot identify w, and w = 1 (the naive max model) is returned.
    """
    M, m, t = (np.asarray(a, dtype=np.float64) for a in (M, m, t))
    u = (M - m) / beff / t
    v = (t - alpha - m / beff) / t
    spread = float(np.median(u)) if u.size else 0.0
    if u.size == 0 or float(np.sum(u * u)) < 1e-12 or spread < 1e-3:
        return 1.0, spread
    return float(np.clip(np.sum(u * v) / np.sum(u * u), 0.0, 1.0)), spread
