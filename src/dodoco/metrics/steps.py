"""Steps of sequences and statistics over steps: seeded order, per-step counts, bootstrap intervals.

A step is the set of sequences one forward pass processes together: B sequences on each of N
ranks, i.e. N*B sequences (``seqs_per_step``). Sequences are assigned to steps in a fixed seeded
order, so every batch size and EP degree is an aggregation of the same per-sequence counts.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import warnings

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["STATISTICS", "bootstrap_mean_ci", "step_counts", "step_order", "summarise"]

#: Statistics over steps reported by summarise, in table order.
STATISTICS = ("mean", "p50", "p95", "ci_lo", "ci_hi")


def step_order(S: int, seed: int) -> np.ndarray:
    """The fixed seeded order of S sequences -> int64 [S]: np.random.default_rng(seed).permutation(S)."""
    return np.random.default_rng(seed).permutation(int(S))


def _group_sum(x: np.ndarray, g: int) -> np.ndarray:
    """Sum consecutive groups of g along axis 0: x[n, ...] -> int64 [n // g, ...] (remainder dropped)."""
    n = x.shape[0] // g
    if g == 1:
        return x[:n].astype(np.int64, copy=False)
    return x[: n * g].reshape((n, g) + x.shape[1:]).sum(axis=1, dtype=np.int64)


def step_counts(counts, seqs_per_step: int, order=None) -> np.ndarray:
    """Per-step counts: counts[S, L, E] -> int64 [n_steps, L, E].

    Sums ``counts`` over consecutive groups of ``seqs_per_step`` (= N*B) sequences taken in
    ``order`` (int [S'] indices into S; default the identity, usually ``step_order(S, seed)``);
    n_steps = S' // seqs_per_step, the remainder is dropped. Raises DodocoError when fewer sequences
    than one step needs are given.
    """
    counts = np.asarray(counts)
    if counts.ndim != 3:
        raise DodocoError(f"counts must have shape [S, L, E], got shape {counts.shape}")
    g = int(seqs_per_step)
    if g < 1:
        raise DodocoError(f"sequences per step must be >= 1, got {seqs_per_step}")
    if order is not None:
        order = np.asarray(order)
        if order.ndim != 1:
            raise DodocoError(f"order must be a 1-D index array, got shape {order.shape}")
        counts = counts[order]
    S = counts.shape[0]
    if S < g:
        raise DodocoError(
            f"a step of {g} sequences needs at least {g} sequences, got S={S}: "
            "observe more sequences or use a smaller batch / EP degree"
        )
    return _group_sum(counts, g)


def _boot_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Multinomial resampling counts W[n_boot, n] (each row sums to n), float64."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    idx += (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def bootstrap_mean_ci(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of the mean over axis 0: values[n, ...] -> (lo[...], hi[...]).

    Resamples the n rows with replacement ``n_boot`` times (seeded) as a multinomial count matrix
    W[n_boot, n]; the resampled means are W @ values / n, one matrix product for all columns. The
    interval is the ((1-level)/2, (1+level)/2) quantiles of those means. NaN entries are ignored
    (per column, a resample's mean is over its non-NaN rows). n == 1 gives lo = hi = the value;
    n == 0 gives NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0:
        raise ValueError("values must have a leading axis of samples")
    n, rest = v.shape[0], v.shape[1:]
    if n == 0:
        nan = np.full(rest, np.nan)
        return nan, nan.copy()
    if n == 1:
        return v[0].copy(), v[0].copy()
    flat = v.reshape(n, -1)
    W = _boot_weights(n, int(n_boot), seed)
    mask = np.isnan(flat)
    with np.errstate(divide="ignore", invalid="ignore"):
        if mask.any():
            means = (W @ np.where(mask, 0.0, flat)) / (W @ (~mask).astype(np.float64))
        else:
            means = (W @ flat) / n
    a = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(means, [a, 1.0 - a], axis=0) if np.isnan(means).any() else \
            np.quantile(means, [a, 1.0 - a], axis=0)
    return q[0].reshape(rest), q[1].reshape(rest)


def summarise(values, n_boot: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Statistics over steps: values[n_steps, ...] -> {statistic: float64 [...]} in STATISTICS order.

    "mean", "p50" (median), "p95" over axis 0, ignoring NaN; "ci_lo"/"ci_hi" the bootstrap 95%
    interval of the mean (bootstrap_mean_ci with ``n_boot`` and ``seed``).
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = bootstrap_mean_ci(v, n_boot=n_boot, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, quietly
        if np.isnan(v).any():
            mean = np.nanmean(v, axis=0)
            p50, p95 = np.nanpercentile(v, [50, 95], axis=0)
        else:
            mean = v.mean(axis=0)
            p50, p95 = np.percentile(v, [50, 95], axis=0)
    return {"mean": mean, "p50": p50, "p95": p95, "ci_lo": lo, "ci_hi": hi}
