"""Candidate forms of the dispatch-time model, all anchored on the measured balanced curve.

For byte matrices b[n, N, N] (rank i sends b[i, j] to rank j; b[i, i] stays local) the features
are S_i, R_j (off-diagonal send / receive bytes, ``dodoco.ep.traffic.send_recv``), m = mean_i S_i,
M = max(max_i S_i, max_j R_j), the largest pair p = max_{i != j} b[i, j], and the per-rank size
x = sum(b) / N (diagonal included, the nccl-tests "size").

**Balanced curve.** On balanced traffic (M = m) the time is T0(m) = alpha + m / B(m): alpha is the
least-squares fixed cost of the balanced points (relative error), B(m) = m / (t - alpha) the
effective bandwidth measured at each balanced size, interpolated in log m and clamped at the ends.
Every form below reduces to T0 on balanced traffic; they differ in how imbalance costs time:

- ``volume``: T0(m) (imbalance costs nothing; a baseline);
- ``naive_max``: alpha + M / B(m) (the busiest rank sets the time; a baseline);
- ``blend``: alpha + (m + w (M - m)) / B(m), one w;
- ``blend_size``: the same with w(x) fitted per calibrated size, interpolated in log2 x;
- ``pair_rate``: per-pair costs at a size-dependent rate: a message of p bytes costs
  c(p) = p / B((N-1) p) (the rate a balanced alltoall of pair messages of that size reached),
  sigma_i = sum_{j != i} c(b_ij), rho_j = sum_{i != j} c(b_ij),
  T = alpha + mean sigma + w (max(max sigma, max rho) - mean sigma), one w;
- ``max_terms``: alpha + max(m, k (m + w (M - m)), q (N-1) p) / B(m), with (k, w, q) fitted per
  calibrated size: a volume term, a receiver term whose response to imbalance depends on size
  (k > 1: any imbalance already costs more than the volume, as NCCL at 470 MB per rank), and a
  pair term (q = 1: one pair's links carry 1/(N-1) of the GPU's bandwidth, a direct-link mesh;
  q = 0: a switch).

Parameters are fitted by a bounded grid search on squared relative error (``fit_params``); pure
numpy. Units: bytes, seconds, bytes/second. docs/dispatch.md derives each form.

Shape legend: N EP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dodoco.ep.traffic import off_diagonal, send_recv
from dodoco.errors import DodocoError

__all__ = [
    "BASELINES",
    "CANDIDATES",
    "FORMS",
    "Balanced",
    "Feats",
    "Form",
    "evaluate",
    "feats",
    "fit_balanced",
    "fit_line",
    "fit_params",
    "nominal",
]


@dataclass(frozen=True)
class Feats:
    """Features of n byte matrices: x, m, M, pair [n]; sigma_mean, sigma_max [n] (pair-rate sums)."""

    N: int
    x: np.ndarray
    m: np.ndarray
    M: np.ndarray
    pair: np.ndarray
    b: np.ndarray


def feats(b) -> Feats:
    """b[n, N, N] bytes -> Feats."""
    b = np.asarray(b, dtype=np.float64)
    if b.ndim == 2:
        b = b[None]
    N = b.shape[-1]
    S, R = send_recv(b)
    pair = off_diagonal(b).max(axis=(-2, -1)) if N > 1 else np.zeros(b.shape[0])
    return Feats(N, b.sum(axis=(-2, -1)) / N, S.mean(-1), np.maximum(S.max(-1), R.max(-1)), pair, b)


def fit_line(x, t) -> tuple[float, float]:
    """Least squares t = alpha + x / beff in relative error -> (alpha, beff); alpha clipped at 0."""
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64)
    wt = 1.0 / t
    X = np.stack([np.ones_like(x), x], axis=1) * wt[:, None]
    (a, slope), *_ = np.linalg.lstsq(X, t * wt, rcond=None)
    if a < 0 or slope <= 0:
        a, slope = 0.0, float(np.sum(x * t * wt**2) / np.sum((x * wt) ** 2))
    return float(a), float(1.0 / slope)


@dataclass(frozen=True)
class Balanced:
    """The balanced curve: fixed cost alpha (s), effective bandwidth beff[k] (bytes/s) at m[k] bytes."""

    alpha: float
    m: np.ndarray
    beff: np.ndarray

    def bw(self, m) -> np.ndarray:
        """B(m): log-log interpolation of the measured effective bandwidth, clamped at both ends."""
        lm = np.log(np.maximum(np.asarray(m, dtype=np.float64), 1.0))
        return np.exp(np.interp(lm, np.log(self.m), np.log(self.beff)))

    def time(self, m) -> np.ndarray:
        return self.alpha + np.asarray(m, dtype=np.float64) / self.bw(m)

    def to_dict(self) -> dict:
        return {"alpha_us": self.alpha * 1e6, "m_bytes": self.m.tolist(), "beff_GBps": (self.beff / 1e9).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Balanced":
        return cls(
            float(d["alpha_us"]) * 1e-6, np.asarray(d["m_bytes"], float), np.asarray(d["beff_GBps"], float) * 1e9
        )


def fit_balanced(m, t, min_bytes: float = 1 << 20) -> Balanced:
    """Balanced curve from balanced points (m[n] off-diagonal bytes per rank, t[n] seconds)."""
    m, t = np.asarray(m, dtype=np.float64), np.asarray(t, dtype=np.float64)
    keep = m >= min_bytes
    if keep.sum() < 2:
        raise DodocoError(
            f"{int(keep.sum())} balanced points of >= {min_bytes:.0f} bytes per rank: the model "
            "needs at least 2 sizes (replay with --sweep, or the calibration grid at skew 1.0)"
        )
    m, t = m[keep], t[keep]
    alpha, _ = fit_line(m, t)
    sizes = np.unique(m)
    med = np.array([np.median(t[m == s]) for s in sizes])
    ok = med > alpha * 1.02  # latency-bound points carry no bandwidth
    if ok.sum() < 1:
        raise DodocoError("every balanced point is latency-bound (time ~ alpha): calibrate on larger messages")
    return Balanced(alpha, sizes[ok], sizes[ok] / (med[ok] - alpha))


def _pair_sums(f: Feats, bal: Balanced) -> tuple[np.ndarray, np.ndarray]:
    """(mean_i sigma_i, max(max sigma, max rho)) [n] of the pair-rate form."""
    N = f.N
    off = off_diagonal(f.b)
    c = np.where(off > 0, off / bal.bw((N - 1) * np.maximum(off, 1.0)), 0.0)  # diagonal 0: nothing local
    sig, rho = send_recv(c)
    return sig.mean(-1), np.maximum(sig.max(-1), rho.max(-1))


def _volume(f, bal, th):
    return bal.time(f.m)


def _naive(f, bal, th):
    return bal.alpha + f.M / bal.bw(f.m)


def _blend(f, bal, th):
    return bal.alpha + (f.m + th[..., 0] * (f.M - f.m)) / bal.bw(f.m)


def _pair_rate(f, bal, th):
    mean, top = _pair_sums(f, bal)
    return bal.alpha + mean + th[..., 0] * (top - mean)


def _max_terms(f, bal, th):
    k, w, q = th[..., 0], th[..., 1], th[..., 2]
    a = np.maximum(f.m, k * (f.m + w * (f.M - f.m)))
    return bal.alpha + np.maximum(a, q * (f.N - 1) * f.pair) / bal.bw(f.m)


@dataclass(frozen=True)
class Form:
    """A model form: parameter names, their bounds, whether fitted per calibrated size, its function."""

    name: str
    params: tuple
    bounds: tuple
    per_size: bool
    fn: object
    summary: str

    def predict(self, f: Feats, bal: Balanced, theta) -> np.ndarray:
        """Times [..., n] for parameters theta[..., n, P] (one row per sample) or theta[P]."""
        th = np.asarray(theta, dtype=np.float64)
        if th.ndim == 1:
            th = np.broadcast_to(th, (f.m.shape[0], th.shape[0]))
        return np.asarray(self.fn(f, bal, th), dtype=np.float64)


FORMS = {
    "volume": Form("volume", (), (), False, _volume, "T0(m): imbalance costs nothing"),
    "naive_max": Form("naive_max", (), (), False, _naive, "alpha + M / B(m): the busiest rank sets the time"),
    "blend": Form("blend", ("w",), ((0.0, 3.0),), False, _blend, "alpha + (m + w (M - m)) / B(m), one w"),
    "blend_size": Form("blend_size", ("w",), ((0.0, 3.0),), True, _blend, "blend with w per calibrated size"),
    "pair_rate": Form(
        "pair_rate",
        ("w",),
        ((0.0, 3.0),),
        False,
        _pair_rate,
        "per-pair costs at the balanced rate of their size; w on the busiest rank",
    ),
    "max_terms": Form(
        "max_terms",
        ("k", "w", "q"),
        ((0.5, 2.5), (0.0, 2.0), (0.0, 1.0)),
        True,
        _max_terms,
        "max(volume, k x receiver blend, q x pair) per calibrated size",
    ),
}
BASELINES = ("volume", "naive_max")


def nominal(alpha: float, bw: float) -> Balanced:
    """A balanced curve from nominal numbers: fixed cost alpha (s) and one bandwidth bw (bytes/s)."""
    return Balanced(float(alpha), np.array([1.0]), np.array([float(bw)]))


def evaluate(name: str, b, bal: Balanced, theta=()) -> np.ndarray:
    """Form ``name`` with parameters theta[P] on byte matrices b[..., N, N] -> times (s) [...]."""
    b = np.asarray(b, dtype=np.float64)
    lead = b.shape[:-2]
    return FORMS[name].predict(feats(b.reshape((-1,) + b.shape[-2:])), bal, np.asarray(theta, float)).reshape(lead)


CANDIDATES = ("blend", "blend_size", "pair_rate", "max_terms")


def _rel_sse(form: Form, f: Feats, bal: Balanced, t: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Sum of squared relative errors for every candidate row of grid[g, P] -> [g]."""
    th = np.broadcast_to(grid[:, None, :], (grid.shape[0], t.shape[0], grid.shape[1]))
    pred = form.predict(f, bal, th)
    return (((pred - t) / t) ** 2).sum(-1)


def fit_params(form: Form, f: Feats, bal: Balanced, t, steps: int = 13, rounds: int = 4) -> np.ndarray:
    """Parameters [P] minimising the squared relative error of ``form`` on (f, t): a grid search over
    the bounds with ``steps`` values per parameter, zoomed ``rounds`` times around the best point."""
    t = np.asarray(t, dtype=np.float64)
    if not form.params or t.size == 0:
        return np.zeros(len(form.params))
    lo = np.array([b[0] for b in form.bounds])
    hi = np.array([b[1] for b in form.bounds])
    best = (lo + hi) / 2
    for _ in range(rounds):
        axes = [np.linspace(a, b, steps) for a, b in zip(lo, hi)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
        best = grid[int(np.argmin(_rel_sse(form, f, bal, t, grid)))]
        span = (hi - lo) / (steps - 1)
        lo = np.maximum(best - span, [b[0] for b in form.bounds])
        hi = np.minimum(best + span, [b[1] for b in form.bounds])
    return best
