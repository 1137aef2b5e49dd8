"""NeuSim's receiver-skew formula, the two load-imbalance parameters it takes as measured on a
routing trace, and the effective pair that reproduces the skew measured on the trace.

NeuSim (platformxlab/NeuSim, PR "Support more MoE expert routing load imbalance patterns") models
an MoE layer with two parameters:

- ``expert_load_imbalance_factor`` f: the most-loaded expert receives T*K/E*f tokens (f = 1
  balanced, f = E/K all tokens on one expert; -1 means E/K);
- ``num_worst_case_experts`` W in [1, K]: W experts each receive that maximum; the other E - W
  split the rest equally.

Its dispatch/combine receiver skew (``_all_to_all_receiver_skew``): the worst-case device holds
P = max(1, ceil(E/EP)) experts, W_dev = min(W, P) of them hot, in real (unfloored) units:

    eff = T*K/E * f,   rem = (T*K - W*eff) / (E - W),   hot = W_dev*eff + (P - W_dev)*rem,
    skew = hot / (T*K/EP),   and skew = 1 when EP <= 1.

The PR applies the >= 1 floor only to the expert matmul's token count (``effective_tokens``), not
to this ratio; T cancels. docs/neusim.md derives the trace estimators:

- f = max_e c_e / mean_e c_e per step (N*B sequences at EP = N) and layer, averaged;
- W = D+ / (max_e c_e - mean) per step and layer, D+ = sum_e max(c_e - mean, 0) the load above the
  mean, averaged, rounded, clipped to [1, K]: the number of experts at the maximum load that carry
  the trace's above-mean load, which is what W hot experts at f*mean carry in NeuSim's profile.

These "measured" parameters describe the experts; NeuSim's formula puts every hot expert on one
device, so fed with them it overstates the receiver skew of a real layout. ``effective_params``
gives the "effective" (f, W) with which the formula reproduces the skew measured at one EP
(exactly: the skew is linear in f), W chosen by the residual at the other EPs.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks (EP),
B sequences per rank per step, W worst-case experts.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa

from dodoco import defaults
from dodoco.ep.loads import RankMap
from dodoco.ep.placements import build_placement
from dodoco.ep.scan_loads import expert_metrics
from dodoco.ep.steps import StepSource, feasible_pairs
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import max_mean

__all__ = [
    "effective_factor",
    "effective_params",
    "effective_tokens",
    "experts_on_worst_case_device",
    "worst_case_device",
    "imbalance_factor",
    "neusim_predicted_skew",
    "neusim_table",
    "solve_factor",
    "worst_case_experts",
]


def experts_on_worst_case_device(E: int, EP: int) -> int:
    """Experts on NeuSim's busiest device: max(1, ceil(E / EP)) (E=10, EP=3 -> 4; EP > E -> 1)."""
    return max(1, -(-int(E) // max(1, int(EP))))


def effective_factor(E: int, K: int, factor: float) -> float:
    """NeuSim's f with the -1 sentinel resolved to E/K; DodocoError outside [1, E/K] or bad E, K."""
    if E < 1 or K < 1 or K > E:
        raise DodocoError(f"need 1 <= K <= E, got E={E} experts, K={K} per token")
    if factor == -1.0:
        return E / K
    if not 1.0 <= factor <= E / K + 1e-9:
        raise DodocoError(f"expert_load_imbalance_factor must be -1 or in [1, E/K = {E / K:g}], got {factor}")
    return float(factor)


def effective_tokens(tokens: float, E: int, K: int, factor: float) -> int:
    """Tokens of NeuSim's most-loaded expert matmul: max(1, ceil(T*K/E*f)) (the floored one)."""
    return max(1, math.ceil(tokens * K / E * effective_factor(E, K, factor)))


def neusim_predicted_skew(E: int, K: int, EP: int, factor: float, W: int = 1, tokens: float = 1.0) -> float:
    """NeuSim's receiver skew for E experts, top-K, EP devices, factor f, W hot experts, T tokens.

    Real (unfloored) units as in the PR; 1.0 when EP <= 1. T cancels (kept for the record).
    """
    E, K, EP, W = int(E), int(K), int(EP), int(W)
    f = effective_factor(E, K, factor)
    if not 1 <= W <= K:
        raise DodocoError(f"num_worst_case_experts must be in [1, K={K}], got {W}")
    if tokens <= 0:
        raise DodocoError(f"tokens must be > 0, got {tokens}")
    if EP <= 1:
        return 1.0
    P, w_dev, eff, rem = worst_case_device(E, EP, f, W, tokens * K)
    return (w_dev * eff + (P - w_dev) * rem) / (tokens * K / EP)


def worst_case_device(E: int, EP: int, f: float, W: int, TK: float) -> tuple[int, int, float, float]:
    """NeuSim's busiest device for T*K = TK assignments: (P experts on it, W_dev = min(W, P) hot ones,
    eff tokens of a hot expert = TK/E*f, rem tokens of each other = (TK - W*eff)/(E - W)), real units."""
    P = experts_on_worst_case_device(E, EP)
    eff = TK / E * f
    rem = (TK - W * eff) / (E - W) if E > W else 0.0
    return P, min(W, P), eff, rem


def imbalance_factor(step_counts) -> np.ndarray:
    """Per-step, per-layer f = max_e c_e / mean_e c_e: step_counts[n, L, E] -> float64 [n, L]."""
    return expert_metrics(step_counts)["max_mean"]


def worst_case_experts(step_counts) -> np.ndarray:
    """Per-step, per-layer W estimate D+ / (max - mean): [n, L, E] -> float64 [n, L] (>= 1).

    D+ = sum_e max(c_e - mean, 0). NaN where the load is balanced (max == mean) or empty.
    """
    c = np.asarray(step_counts, dtype=np.float64)
    mean = c.mean(axis=-1, keepdims=True)
    above = np.clip(c - mean, 0.0, None).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return above / (c.max(axis=-1) - mean[..., 0])


def _nanmean(x) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(x))


def _row(steps, rmap: RankMap | None, E: int, K: int, N: int, B: int) -> dict:
    """One (EP, batch) row: NeuSim parameters from steps[n, L, E], predicted vs measured skew."""
    f_steps = imbalance_factor(steps)
    f = min(max(_nanmean(f_steps), 1.0), E / K)
    w_exact = _nanmean(worst_case_experts(steps))
    W = int(min(max(round(w_exact) if np.isfinite(w_exact) else 1, 1), K))
    tokens = float(steps.sum(axis=-1).mean()) / K  # tokens per step (per layer)
    measured = max_mean(rmap.loads(steps)) if rmap is not None else np.ones(f_steps.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p95 = float(np.nanpercentile(measured.mean(axis=1), 95))
    pred = neusim_predicted_skew(E, K, N, f, W, max(tokens, 1e-9))
    meas = _nanmean(measured)
    return {
        "ep": N,
        "batch": B,
        "steps": int(steps.shape[0]),
        "tokens_per_step": tokens,
        "expert_load_imbalance_factor": f,
        "factor_p95": float(np.nanpercentile(f_steps.mean(axis=1), 95)),
        "num_worst_case_experts": W,
        "w_estimate": w_exact,
        "predicted_skew": pred,
        "measured_skew": meas,
        "measured_skew_p95": p95,
        "predicted_over_measured": pred / meas if meas > 0 else float("nan"),
    }


def neusim_table(
    source: StepSource,
    K: int,
    ep=defaults.EP,
    batch=(1,),
    *,
    placement: str = defaults.PLACEMENT,
    regime: str = "prefill",
    **labels,
) -> pa.Table:
    """NeuSim parameters and predicted vs measured receiver skew per (EP, batch).

    source: the steps (``ep.steps``: ``run_source`` for prefill, whose window aggregate is the one
    step of every (EP, batch); ``ep.decode.decode_source`` with regime="decode"). Measured skew: mean
    over steps and layers of max_r R_r / mean_r R_r under ``placement`` (contiguous, the default
    layout; fitted placements are refused here). EP values with N*B above the units, or N > E, are
    skipped. Extra keyword labels (model, condition, seq_len) become constant columns.
    """
    E = source.level(1).shape[-1]
    pairs, _ = feasible_pairs(source, ep, batch)
    rows = []
    for N, B in pairs:
        rmap = None
        if N > 1:
            if N > E:
                continue
            rmap = RankMap(build_placement(placement, E, N))
        rows.append(_row(source.steps(N * B), rmap, E, int(K), N, B))
    cols = {k: [r[k] for r in rows] for k in (rows[0] if rows else _row_keys())}
    const = {"regime": regime, "placement": placement, **labels}
    n = len(rows)
    table = {k: pa.array([v] * n) for k, v in const.items()}
    table.update({k: pa.array(v) for k, v in cols.items()})
    return pa.table(table)


def _row_keys():
    return (
        "ep",
        "batch",
        "steps",
        "tokens_per_step",
        "expert_load_imbalance_factor",
        "factor_p95",
        "num_worst_case_experts",
        "w_estimate",
        "predicted_skew",
        "measured_skew",
        "measured_skew_p95",
        "predicted_over_measured",
    )


def solve_factor(E: int, K: int, EP: int, skew_target: float, W: int) -> float:
    """The f in [1, E/K] whose NeuSim skew at EP with W hot experts is closest to skew_target.

    NeuSim's skew is linear in f (eff and rem are), so two evaluations of the formula give it; f
    is clipped to [1, E/K] when the target lies outside what W hot experts can express.
    """
    top = E / K
    s1 = neusim_predicted_skew(E, K, EP, 1.0, W)
    if top <= 1.0:
        return 1.0
    slope = (neusim_predicted_skew(E, K, EP, top, W) - s1) / (top - 1.0)
    if slope <= 1e-15:
        return 1.0
    return float(min(max(1.0 + (skew_target - s1) / slope, 1.0), top))


def effective_params(E: int, K: int, measured: dict, at_ep: int, w_hint: float | None = None) -> dict:
    """The effective (f, W): NeuSim's formula reproduces ``measured[at_ep]`` (receiver skew measured
    at EP = at_ep); among W = 1..K that do, the one whose skew misses the other EPs' measured skew
    least (max absolute relative residual, to 1e-6 %). measured: {EP: skew}.

    Where every listed EP puts W or more experts on a device, skew - 1 = W (f - 1) (E - P) / (P (E - W))
    (P = ceil(E / EP)): pairs with equal W (f - 1) / (E - W) give the same skews, and only an EP with
    fewer than W experts per device tells them apart. Such ties go to the W nearest ``w_hint`` (the
    measured hot-expert count), then the smaller W.

    -> {"expert_load_imbalance_factor", "num_worst_case_experts", "residual_pct": {EP: %}}.
    """
    best = None
    for W in range(1, int(K) + 1):
        f = solve_factor(E, K, at_ep, measured[at_ep], W)
        res = {
            ep: 100.0 * (neusim_predicted_skew(E, K, ep, f, W) / s - 1.0)
            for ep, s in sorted(measured.items())
            if ep <= E and s > 0
        }
        others = [abs(v) for ep, v in res.items() if ep != at_ep] or [0.0]
        key = (round(abs(res[at_ep]), 6), round(max(others), 6), abs(W - (w_hint if w_hint is not None else W)), W)
        if best is None or key < best[0]:
            best = (key, f, W, res)
    _, f, W, res = best
    return {"expert_load_imbalance_factor": f, "num_worst_case_experts": W, "residual_pct": res}
