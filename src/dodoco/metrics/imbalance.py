"""Imbalance metrics of expert loads: pure numpy functions over the last axis.

Every function takes ``c[..., E]``, the number of assignments each of the E routed experts received
(one MoE layer, one set of tokens; any integer or float dtype, non-negative), and returns float64
``[...]``: one value per leading index. Leading axes are free, e.g. ``[S, L, E]`` per sequence and
layer or ``[n_steps, L, E]`` per step and layer. Where ``sum(c) == 0`` (an empty layer) the value
is NaN, silently. The formulas are derived in docs/metrics.md.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["METRICS", "all_metrics", "cv", "gini", "hot_count", "hot_share", "lorenz", "max_mean", "norm_entropy"]

# Rows of [R, E] processed per chunk by all_metrics: ~2**17 elements keeps the float64 working set
# (~1 MiB per temporary) inside the CPU caches.
_CHUNK_ELEMENTS = 1 << 17
_U32_MAX = np.iinfo(np.uint32).max


def hot_count(E: int) -> int:
    """Number of "hot" experts for hot_share: ceil(E / 10) (E=4 -> 1, E=64 -> 7, E=128 -> 13)."""
    return -(-int(E) // 10)


def _as_float(c: np.ndarray) -> np.ndarray:
    """c[..., E] as float64 (no copy if already float64)."""
    return np.asarray(c, dtype=np.float64)


def _check(c) -> np.ndarray:
    c = np.asarray(c)
    if c.ndim == 0 or c.shape[-1] == 0:
        raise ValueError(f"counts must have a non-empty last axis of experts, got shape {c.shape}")
    return c


def _gini_weights(E: int) -> np.ndarray:
    """w[E] = 2i - E - 1 for i = 1..E (the Gini weights of the ascending order statistics)."""
    return 2.0 * np.arange(1, E + 1, dtype=np.float64) - E - 1


def _sort_fast(c: np.ndarray) -> np.ndarray:
    """c[..., E] sorted ascending along the last axis, as float64.

    Non-negative integer counts that fit in uint32 are sorted as uint32 (SIMD sort, ~10x faster than
    int64 on x86), then converted; everything else is sorted as float64 (exact for integers < 2**53).
    """
    if np.issubdtype(c.dtype, np.integer) and c.size:
        if c.dtype.itemsize <= 4 and not np.issubdtype(c.dtype, np.signedinteger):
            return np.sort(c, axis=-1).astype(np.float64)
        if c.min() >= 0 and c.max() <= _U32_MAX:
            return np.sort(c.astype(np.uint32), axis=-1).astype(np.float64)
    return np.sort(_as_float(c), axis=-1)


# The formulas, each written once: the public functions and all_metrics (one sort for all five) call
# them. s: c sorted ascending as float64 [..., E]; total = sum over E; mean = total / E.


def _gini_sorted(s: np.ndarray, total: np.ndarray) -> np.ndarray:
    E = s.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s @ _gini_weights(E)) / (E * total)


def _ratio(top: np.ndarray, base: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return top / base


def _cv_from(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    d = x - mean[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.einsum("...e,...e->...", d, d) / x.shape[-1]) / mean


def _entropy_from(x: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Normalised entropy from x[..., E] (float64, >= 0) and total[...] = x.sum(-1).

    -sum p log p = log(T) - sum c log c / T with p = c/T and 0 log 0 = 0; divided by log E.
    """
    E = x.shape[-1]
    xlogx = np.einsum("...e,...e->...", x, np.log(np.where(x > 0, x, 1.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (np.log(total) - xlogx / total) / np.log(E)
    return np.clip(h, 0.0, 1.0)  # rounding can leave -1e-17 or 1 + 1e-16; NaN passes through


def gini(c) -> np.ndarray:
    """Gini coefficient of c[..., E] -> float64 [...]; 0 = balanced, (E-1)/E = one expert takes all.

    Sort ascending, G = sum_i (2i - E - 1) c_(i) / (E * sum c), i = 1..E.
    """
    s = _sort_fast(_check(c))
    return _gini_sorted(s, s.sum(axis=-1))


def max_mean(c, axis: int = -1) -> np.ndarray:
    """Straggler factor of c along ``axis`` (default: the experts of c[..., E]) -> float64: max / mean;
    1 = balanced, E = one expert takes all. Over rank loads R[..., N] it is the receiver skew."""
    c = np.asarray(c)
    x = _as_float(_check(np.moveaxis(c, axis, -1) if c.ndim else c))
    return _ratio(x.max(axis=-1), x.mean(axis=-1))


def cv(c) -> np.ndarray:
    """Coefficient of variation of c[..., E] -> float64 [...]: population std(c) / mean(c)."""
    x = _as_float(_check(c))
    return _cv_from(x, x.mean(axis=-1))


def norm_entropy(c) -> np.ndarray:
    """Normalised entropy of c[..., E] -> float64 [...]: -sum p log p / log E, p = c / sum(c).

    1 = balanced, 0 = one expert takes all; 0 log 0 = 0. NaN for E == 1 (log E = 0).
    """
    x = _as_float(_check(c))
    return _entropy_from(x, x.sum(axis=-1))


def hot_share(c) -> np.ndarray:
    """Hot-expert share of c[..., E] -> float64 [...]: fraction of assignments that go to the top
    ceil(E/10) experts (hot_count(E)); 1/E * ceil(E/10) when balanced, 1 when one expert takes all."""
    x = _as_float(_check(c))
    E = x.shape[-1]
    k = hot_count(E)
    return _ratio(np.partition(x, E - k, axis=-1)[..., E - k :].sum(axis=-1), x.sum(axis=-1))


METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gini": gini,
    "max_mean": max_mean,
    "cv": cv,
    "entropy": norm_entropy,
    "hot_share": hot_share,
}


def _metrics_rows(c: np.ndarray, out: np.ndarray) -> None:
    """All five metrics for the rows of c[R, E] into out[5, R] (order of METRICS), one sort."""
    E = c.shape[-1]
    s = _sort_fast(c)
    total = s.sum(axis=-1)
    mean = total / E
    out[0] = _gini_sorted(s, total)
    out[1] = _ratio(s[:, -1], mean)
    out[2] = _cv_from(s, mean)
    out[3] = _entropy_from(s, total)
    out[4] = _ratio(s[:, E - hot_count(E) :].sum(axis=-1), total)


def _n_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def all_metrics(c, *, threads: int | None = None) -> dict[str, np.ndarray]:
    """All five metrics of c[..., E] sharing one sort -> {name: float64 [...]} in METRICS order.

    Equal to ``{name: f(c) for name, f in METRICS.items()}`` (to rounding) but several times
    faster: rows are sorted once (as uint32 when integer counts fit), processed in cache-sized
    chunks, on ``threads`` threads (default: up to 4, the CPU count; numpy releases the GIL).
    """
    c = _check(c)
    lead, E = c.shape[:-1], c.shape[-1]
    rows = c.reshape(-1, E)
    R = rows.shape[0]
    out = np.empty((len(METRICS), R), dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // E)
    starts = range(0, R, step)

    def work(a: int) -> None:
        _metrics_rows(rows[a : a + step], out[:, a : a + step])

    n_threads = _n_threads() if threads is None else max(1, int(threads))
    if n_threads == 1 or len(starts) < 2:
        for a in starts:
            work(a)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            list(pool.map(work, starts))
    return {name: out[j].reshape(lead) for j, name in enumerate(METRICS)}


def lorenz(c) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of c[..., E] -> (x[E+1], y[..., E+1]) for plots.

    x = share of experts (0, 1/E, ..., 1), y = cumulative share of assignments of the x least-loaded
    experts (experts sorted ascending); y = x when balanced. The area between the diagonal and the
    curve is G/2. y is NaN where sum(c) == 0.
    """
    c = _check(c)
    E = c.shape[-1]
    s = _sort_fast(c)
    cum = np.concatenate([np.zeros(s.shape[:-1] + (1,)), np.cumsum(s, axis=-1)], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = cum / cum[..., -1:]
    return np.arange(E + 1, dtype=np.float64) / E, y
