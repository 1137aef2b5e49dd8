"""Finding 2, mock vs real: does a mock-token benchmark show the routing real text produces?

Per model and batch size B: the ratio Gini(mock) / Gini(real) of the per-step mean Gini; per run:
the batch-size trend, the slope of per-step Gini against log2(B). A trend significant under a mock
condition and not under a real-text condition of the same model is "fabricated by mock".

Slope and interval (docs/findings.md): y_B = mean over steps of the model-level per-step Gini at B;
the slope is the least-squares slope of y_B on x_B = log2 B (one point per batch size, so every B
weighs the same however many steps it has). Its 95% interval is a stratified percentile bootstrap:
each resample draws the steps of every B with replacement (within B), recomputes every y_B and the
slope. A slope is significant when its interval excludes 0 by more than rounding (1e-12) and
|slope| >= ``min_slope`` (default 0).

Shape legend: S sequences, L MoE layers, E routed experts, B sequences per step.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict, require_same, run_label
from dodoco.ep.steps import layer_mean
from dodoco.metrics.imbalance import gini

__all__ = ["GiniSeries", "batch_trend", "boot_means", "mock_vs_real", "model_gini", "step_gini"]

FABRICATED, BOTH, NEITHER, REAL_ONLY = ("fabricated by mock", "trend in both", "no trend",
                                        "trend only under real text")
_ROWS_PER_CHUNK = 1 << 12
_TOL = 1e-12  # an interval within rounding of 0 (identical steps) does not exclude 0


def model_gini(steps: np.ndarray) -> np.ndarray:
    """steps[n, L, E] -> float64 [n]: per-step Gini averaged over layers (NaN layers ignored)."""
    n = steps.shape[0]
    out = np.empty((n, steps.shape[1]))
    chunks = range(0, n, max(1, _ROWS_PER_CHUNK // max(1, steps.shape[1])))
    size = chunks.step

    def work(a):
        out[a:a + size] = gini(steps[a:a + size])

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(work, chunks))
    return layer_mean(out)


def step_gini(counts, batches=(1, 2, 4, 8, 16, 32), seed: int = 0, *, source=None) -> dict[int, np.ndarray]:
    """Model-level per-step Gini: counts[S, L, E] -> {B: float64 [S // B]} for each B <= S.

    Steps of B sequences in step_order(S, seed), formed by the one step former (the StepSource of
    ``dodoco.ep.steps.source_of``, whose sums are in a dtype that holds every step total, 64 bits
    when needed); the model level of a step is ``layer_mean`` of its per-layer Gini.
    Batch sizes B > S are left out. ``source``: a StepSource over the same counts and seed to
    reuse (counts may then be None).
    """
    if source is None:
        from dodoco.ep.steps import source_of

        counts = np.asarray(counts)
        if counts.ndim != 3 or counts.shape[0] == 0:
            raise DodocoError(f"counts must have shape [S, L, E] with S >= 1, got shape {counts.shape}")
        source = source_of(counts, seed)
    S = source.n_steps(1)
    return {B: model_gini(source.steps(B)) for B in sorted({int(b) for b in batches if 1 <= int(b) <= S})}


def boot_means(v, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of v[n] (NaN dropped): float64 [n_boot], each the mean of n draws with replacement."""
    v = np.asarray(v, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.full(n_boot, np.nan)
    if v.size == 1:
        return np.full(n_boot, v[0])
    out = np.empty(n_boot)
    step = max(1, (1 << 20) // v.size)
    for a in range(0, n_boot, step):
        b = min(n_boot, a + step)
        out[a:b] = v[rng.integers(0, v.size, size=(b - a, v.size))].mean(axis=1)
    return out


def batch_trend(steps: dict, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                min_slope: float = 0.0) -> dict:
    """Slope of per-step Gini against log2 B: steps {B: values[n_B]} -> dict.

    Returns batches, means y_B, bootstrap intervals of each y_B (mean_lo/mean_hi), draws[n_boot, n_B]
    (the resampled y_B), slope, slope_lo, slope_hi and significant. Fewer than two batch sizes:
    slope NaN, not significant.
    """
    bs = sorted(int(b) for b, v in steps.items() if np.isfinite(np.asarray(v, dtype=float)).any())
    rng = np.random.default_rng(seed)
    ys = np.array([np.nanmean(np.asarray(steps[b], dtype=float)) for b in bs])
    draws = np.stack([boot_means(steps[b], n_boot, rng) for b in bs], axis=1) if bs else np.empty((n_boot, 0))
    a = (1 - level) / 2
    lo, hi = (np.quantile(draws, [a, 1 - a], axis=0) if bs else (np.empty(0), np.empty(0)))
    out = {"batches": bs, "means": ys, "mean_lo": lo, "mean_hi": hi, "draws": draws,
           "slope": np.nan, "slope_lo": np.nan, "slope_hi": np.nan, "significant": False}
    if len(bs) >= 2:
        x = np.log2(np.array(bs, dtype=float))
        w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # OLS slope = w @ y
        slopes = draws @ w
        s_lo, s_hi = np.quantile(slopes, [a, 1 - a])
        slope = float(w @ ys)
        sig = bool((s_lo > _TOL or s_hi < -_TOL) and abs(slope) >= min_slope)
        out.update(slope=slope, slope_lo=float(s_lo), slope_hi=float(s_hi), significant=sig)
    return out


@dataclass
class GiniSeries:
    """Per-step model-level Gini of one run at each batch size (``step_gini``), with its labels."""

    model: str
    condition: str
    kind: str  # "mock" or "real"
    seq_len: int
    steps: dict = field(repr=False)
    path: str | None = None


def _pairs(series: list[GiniSeries]) -> list[tuple[str, list, list]]:
    """[(model, mocks, reals)]; DodocoError naming the runs when a model lacks one kind or mixes seq_len."""
    models = list(dict.fromkeys(s.model for s in series))
    lacking = []
    out = []
    for m in models:
        own = [s for s in series if s.model == m]
        require_same(own, ("seq_len",), f"mock vs real of model {m}")
        mocks = [s for s in own if s.kind == "mock"]
        reals = [s for s in own if s.kind == "real"]
        if not mocks or not reals:
            have = "mock" if mocks else "real-text"
            lacking.append(f"model {m} has only {have} runs ({', '.join(run_label(s) for s in own)})")
        out.append((m, mocks, reals))
    if lacking:
        raise DodocoError(f"mock vs real compares a mock and a real-text run of the same model: {'; '.join(lacking)}; "
                          "add the missing condition of that model or leave its runs out")
    return out


def _pair_verdict(mock_sig: bool, real_sig: bool) -> str:
    return {(True, False): FABRICATED, (True, True): BOTH, (False, False): NEITHER,
            (False, True): REAL_ONLY}[(mock_sig, real_sig)]


def mock_vs_real(series: list[GiniSeries], *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 min_slope: float = 0.0) -> Verdict:
    """Mock vs real over GiniSeries of one or more models (each model: >= 1 mock and >= 1 real run,
    all of one seq_len). Tables: summary (per model x mock x real condition, with its verdict),
    evidence (per run and B: mean per-step Gini and interval), trend (per run: slope and interval),
    ratio (per model x mock x real x B). Overall verdict "fabricated by mock" when any pair is.
    """
    if not series:
        raise DodocoError("mock vs real needs runs: pass a mock and a real-text run of each model")
    trends = {id(s): batch_trend(s.steps, n_boot, seed, level, min_slope) for s in series}
    evidence, trend_rows, ratio_rows, summary = [], [], [], []
    for s in series:
        t = trends[id(s)]
        lab = {"model": s.model, "condition": s.condition, "kind": s.kind, "seq_len": s.seq_len}
        evidence += [{**lab, "batch": b, "steps": int(np.isfinite(np.asarray(s.steps[b], float)).sum()),
                      "gini": float(t["means"][i]), "gini_lo": float(t["mean_lo"][i]),
                      "gini_hi": float(t["mean_hi"][i])} for i, b in enumerate(t["batches"])]
        trend_rows.append({**lab, "batches": ",".join(map(str, t["batches"])), "slope": t["slope"],
                           "slope_lo": t["slope_lo"], "slope_hi": t["slope_hi"], "significant": t["significant"]})
    a = (1 - level) / 2
    for model, mocks, reals in _pairs(series):
        for mk in mocks:
            for rl in reals:
                tm, tr = trends[id(mk)], trends[id(rl)]
                common = [b for b in tm["batches"] if b in tr["batches"]]
                ratios = []
                for b in common:
                    i, j = tm["batches"].index(b), tr["batches"].index(b)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        r = tm["means"][i] / tr["means"][j]
                        rlo, rhi = np.quantile(tm["draws"][:, i] / tr["draws"][:, j], [a, 1 - a])
                    ratios.append(r)
                    ratio_rows.append({"model": model, "mock": mk.condition, "real": rl.condition, "batch": b,
                                       "gini_mock": float(tm["means"][i]), "gini_real": float(tr["means"][j]),
                                       "ratio": float(r), "ratio_lo": float(rlo), "ratio_hi": float(rhi)})
                summary.append({"model": model, "mock": mk.condition, "real": rl.condition, "seq_len": mk.seq_len,
                                "mock_slope": tm["slope"], "mock_slope_lo": tm["slope_lo"],
                                "mock_slope_hi": tm["slope_hi"], "real_slope": tr["slope"],
                                "real_slope_lo": tr["slope_lo"], "real_slope_hi": tr["slope_hi"],
                                "ratio_min": float(np.nanmin(ratios)) if ratios else np.nan,
                                "ratio_max": float(np.nanmax(ratios)) if ratios else np.nan,
                                "verdict": _pair_verdict(tm["significant"], tr["significant"])})
    flagged = [r for r in summary if r["verdict"] == FABRICATED]
    ratio_max = [r["ratio_max"] for r in summary if np.isfinite(r["ratio_max"])]
    numbers = {"pairs": len(summary), "fabricated_pairs": len(flagged),
               "models_flagged": sorted({r["model"] for r in flagged}),
               "ratio_max": max(ratio_max) if ratio_max else float("nan"), "level": level, "min_slope": min_slope}
    notes = [f"{r['model']}/{r['condition']}: fewer than two batch sizes, no slope" for r in trend_rows
             if not np.isfinite(r["slope"])]
    return Verdict("mock_vs_real", FABRICATED if flagged else "not fabricated", numbers,
                   {"summary": summary, "evidence": evidence, "trend": trend_rows, "ratio": ratio_rows}, notes)
