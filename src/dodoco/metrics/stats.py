"""Statistics over steps: the bootstrap interval of the mean and the summary of per-step values.

Steps themselves are formed in one place, ``dodoco.ep.steps``. Every per-step value is summarised
over its steps as mean, p50, p95, a bootstrap 95% interval of the mean and ``n_steps``, the number
of (non-NaN) steps behind it, so that results resting on one or two steps can be flagged.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import warnings

import numpy as np

from dodoco.defaults import N_BOOT

__all__ = ["STATISTICS", "bootstrap_mean_ci", "layer_mean", "summarise"]

#: Statistics over steps reported by summarise, in table order (n_steps: non-NaN steps counted).
STATISTICS = ("mean", "p50", "p95", "ci_lo", "ci_hi", "n_steps")


def _boot_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Multinomial resampling counts W[n_boot, n] (each row sums to n), float64."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    idx += (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def bootstrap_mean_ci(values, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95):
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
        q = (
            np.nanquantile(means, [a, 1.0 - a], axis=0)
            if np.isnan(means).any()
            else np.quantile(means, [a, 1.0 - a], axis=0)
        )
    return q[0].reshape(rest), q[1].reshape(rest)


def summarise(values, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, np.ndarray]:
    """Statistics over steps: values[n_steps, ...] -> {statistic: float64 [...]} in STATISTICS order.

    "mean", "p50" (median), "p95" over axis 0, ignoring NaN; "ci_lo"/"ci_hi" the bootstrap 95%
    interval of the mean (bootstrap_mean_ci with ``n_boot`` and ``seed``); "n_steps" the number of
    non-NaN values behind them (1 or 2: an interval that means little; 0: all NaN).
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
    n = (~np.isnan(v)).sum(axis=0).astype(np.float64)
    return {"mean": mean, "p50": p50, "p95": p95, "ci_lo": lo, "ci_hi": hi, "n_steps": n}


def layer_mean(v, axis: int = -1) -> np.ndarray:
    """Model level of per-layer values v[..., L] -> float64 [...]: the NaN-ignoring mean over layers
    (an empty layer's NaN is left out; NaN only where every layer is NaN), without warnings."""
    v = np.asarray(v, dtype=np.float64)
    if not np.isnan(v).any():
        return v.mean(axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(v, axis=axis)
