"""Finding 2, mock vs real: does a mock-token benchmark show the routing real text produces?

Runs are compared within one model and one sequence length. Per mock x real pair and batch size B:
the ratio Gini(mock) / Gini(real) of the per-step mean Gini; per run: the batch-size trend, the
slope of per-step Gini against log2(B). A trend significant under a mock condition and not under
a real-text condition of the same model is "fabricated by mock".

Slope and interval (docs/findings.md): y_B = mean over steps of the model-level per-step Gini at B;
the slope is the least-squares slope of y_B on x_B = log2 B (one point per batch size, so every B
weighs the same however many steps it has). Its 95% interval is a stratified percentile bootstrap:
each resample draws the steps of every B with replacement (within B), recomputes every y_B and the
slope. A slope is significant when its interval excludes 0 by more than rounding (1e-12) and
|slope| >= ``min_slope`` (default 0). Batch sizes with two steps or fewer (``FEW_STEPS``) have no
interval and are left out of the slope; a run with fewer than two other batch sizes has no slope.

Shape legend: S sequences, L MoE layers, E routed experts, B sequences per step.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from dodoco import defaults
from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict, few, run_label
from dodoco.metrics.imbalance import gini
from dodoco.metrics.stats import layer_mean

__all__ = ["GiniSeries", "batch_trend", "boot_means", "mock_vs_real", "model_gini", "step_gini"]

FABRICATED, BOTH, NEITHER, REAL_ONLY = ("fabricated by mock", "trend in both", "no trend", "trend only under real text")
NOT_JUDGED = "not judged (too few steps)"
_ROWS_PER_CHUNK = 1 << 12
_TOL = 1e-12  # an interval within rounding of 0 (identical steps) does not exclude 0


def model_gini(steps: np.ndarray) -> np.ndarray:
    """steps[n, L, E] -> float64 [n]: per-step Gini averaged over layers (NaN layers ignored)."""
    n = steps.shape[0]
    out = np.empty((n, steps.shape[1]))
    chunks = range(0, n, max(1, _ROWS_PER_CHUNK // max(1, steps.shape[1])))
    size = chunks.step

    def work(a):
        out[a : a + size] = gini(steps[a : a + size])

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
    return {
        B: model_gini(source.steps(B))
        for B in sorted({int(b) for b in batches if int(b) >= 1})
        if source.n_steps(B) >= 1
    }


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


def batch_trend(
    steps: dict, n_boot: int = defaults.N_BOOT, seed: int = 0, level: float = 0.95, min_slope: float = 0.0
) -> dict:
    """Slope of per-step Gini against log2 B: steps {B: values[n_B]} -> dict.

    Returns batches (every B with a finite value), n (steps per B), means y_B, bootstrap intervals
    of each y_B (mean_lo/mean_hi; NaN for B with few steps), draws[n_boot, n_B] (the resampled y_B;
    NaN columns for few-step B), judged (the B the slope uses: more than FEW_STEPS steps), slope,
    slope_lo, slope_hi and significant. Fewer than two judged B: slope NaN, not significant.
    """
    bs = sorted(int(b) for b, v in steps.items() if np.isfinite(np.asarray(v, dtype=float)).any())
    rng = np.random.default_rng(seed)
    vals = [np.asarray(steps[b], dtype=float) for b in bs]
    n = [int(np.isfinite(v).sum()) for v in vals]
    ys = np.array([np.nanmean(v) for v in vals])
    draws = np.full((n_boot, len(bs)), np.nan)
    for i, v in enumerate(vals):
        if not few(n[i]):
            draws[:, i] = boot_means(v, n_boot, rng)
    a = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: few steps
        lo, hi = np.nanquantile(draws, [a, 1 - a], axis=0) if bs else (np.empty(0), np.empty(0))
    judged = [i for i in range(len(bs)) if not few(n[i])]
    out = {
        "batches": bs,
        "n": n,
        "means": ys,
        "mean_lo": lo,
        "mean_hi": hi,
        "draws": draws,
        "judged": [bs[i] for i in judged],
        "slope": np.nan,
        "slope_lo": np.nan,
        "slope_hi": np.nan,
        "significant": False,
    }
    if len(judged) >= 2:
        x = np.log2(np.array([bs[i] for i in judged], dtype=float))
        w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # OLS slope = w @ y
        slopes = draws[:, judged] @ w
        s_lo, s_hi = np.quantile(slopes, [a, 1 - a])
        slope = float(w @ ys[judged])
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


def _groups(series: list[GiniSeries]) -> tuple[list[tuple[str, int, list, list]], list[str]]:
    """[(model, seq_len, mocks, reals)] of every (model, seq_len) holding both kinds, and a note for
    each that lacks one; DodocoError naming the runs when no group holds both."""
    keys = list(dict.fromkeys((s.model, s.seq_len) for s in series))
    out, lacking = [], []
    for m, L in keys:
        own = [s for s in series if (s.model, s.seq_len) == (m, L)]
        mocks = [s for s in own if s.kind == "mock"]
        reals = [s for s in own if s.kind == "real"]
        if mocks and reals:
            out.append((m, L, mocks, reals))
        else:
            have = "mock" if mocks else "real-text"
            lacking.append(f"{m} at seq_len {L} has only {have} runs ({', '.join(run_label(s) for s in own)})")
    if not out:
        raise DodocoError(
            f"mock vs real compares a mock and a real-text run of the same model and seq_len: "
            f"{'; '.join(lacking)}; add the missing condition or leave those runs out"
        )
    return out, [f"not compared: {x}" for x in lacking]


def _pair_verdict(tm: dict, tr: dict) -> str:
    if not (np.isfinite(tm["slope"]) and np.isfinite(tr["slope"])):
        return NOT_JUDGED
    return {(True, False): FABRICATED, (True, True): BOTH, (False, False): NEITHER, (False, True): REAL_ONLY}[
        (tm["significant"], tr["significant"])
    ]


def _ratio_rows(model, mk, rl, tm, tr, level) -> list[dict]:
    """Gini(mock)/Gini(real) per common B with its bootstrap interval (NaN when either has few steps)."""
    a = (1 - level) / 2
    rows = []
    for b in (b for b in tm["batches"] if b in tr["batches"]):
        i, j = tm["batches"].index(b), tr["batches"].index(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = tm["means"][i] / tr["means"][j]
            q = tm["draws"][:, i] / tr["draws"][:, j]
            rlo, rhi = np.quantile(q, [a, 1 - a]) if np.isfinite(q).all() else (np.nan, np.nan)
        steps = min(tm["n"][i], tr["n"][j])
        rows.append(
            {
                "model": model,
                "seq_len": mk.seq_len,
                "mock": mk.condition,
                "real": rl.condition,
                "batch": b,
                "steps": steps,
                "few_steps": few(steps),
                "gini_mock": float(tm["means"][i]),
                "gini_real": float(tr["means"][j]),
                "ratio": float(r),
                "ratio_lo": float(rlo),
                "ratio_hi": float(rhi),
            }
        )
    return rows


def _ratio_at(rows: list[dict], batch: int) -> dict | None:
    """The ratio row at ``batch``, lowered to the largest B below it (or the smallest B there is)."""
    if not rows:
        return None
    below = [r for r in rows if r["batch"] <= batch]
    return max(below, key=lambda r: r["batch"]) if below else min(rows, key=lambda r: r["batch"])


def _summary_row(model, L, mk, rl, tm, tr, ref) -> dict:
    """One mock x real pair: both slopes with intervals, the ratio at the reference batch, the verdict."""
    ref = ref or {"batch": None, "steps": 0, "ratio": np.nan, "ratio_lo": np.nan, "ratio_hi": np.nan}
    slopes = {}
    for k, t in (("mock", tm), ("real", tr)):
        slopes.update(
            {
                f"{k}_slope": t["slope"],
                f"{k}_slope_lo": t["slope_lo"],
                f"{k}_slope_hi": t["slope_hi"],
                f"{k}_significant": t["significant"],
            }
        )
    return {
        "model": model,
        "seq_len": L,
        "mock": mk.condition,
        "real": rl.condition,
        **slopes,
        "ratio_batch": ref["batch"],
        "ratio_steps": ref["steps"],
        "ratio": ref["ratio"],
        "ratio_lo": ref["ratio_lo"],
        "ratio_hi": ref["ratio_hi"],
        "verdict": _pair_verdict(tm, tr),
    }


def _trend_rows(series, trends) -> tuple[list[dict], list[dict]]:
    """(evidence per run and B, trend per run)."""
    evidence, trend_rows = [], []
    for s, t in zip(series, trends):
        lab = {"model": s.model, "condition": s.condition, "kind": s.kind, "seq_len": s.seq_len}
        evidence += [
            {
                **lab,
                "batch": b,
                "steps": t["n"][i],
                "few_steps": few(t["n"][i]),
                "gini": float(t["means"][i]),
                "gini_lo": float(t["mean_lo"][i]),
                "gini_hi": float(t["mean_hi"][i]),
            }
            for i, b in enumerate(t["batches"])
        ]
        trend_rows.append(
            {
                **lab,
                "batches": ",".join(map(str, t["judged"])),
                "slope": t["slope"],
                "slope_lo": t["slope_lo"],
                "slope_hi": t["slope_hi"],
                "significant": t["significant"],
                "run": s.path,
            }
        )
    return evidence, trend_rows


def _numbers(summary, trend_rows, ratio_rows, ref_batch, level, min_slope) -> dict:
    flagged = [r for r in summary if r["verdict"] == FABRICATED]
    at_ref = [r for r in ratio_rows if r.get("at_ref")]
    fin = [r["ratio"] for r in at_ref if np.isfinite(r["ratio"])]
    trends = {k: [r for r in trend_rows if r["kind"] == k] for k in ("mock", "real")}
    return {
        "pairs": len(summary),
        "fabricated_pairs": len(flagged),
        "models_flagged": sorted({r["model"] for r in flagged}),
        "ref_batch": ref_batch,
        "ratio_min": min(fin) if fin else float("nan"),
        "ratio_max": max(fin) if fin else float("nan"),
        "mock_more_concentrated": sum(r["ratio_lo"] > 1 for r in at_ref),
        "mock_less_concentrated": sum(r["ratio_hi"] < 1 for r in at_ref),
        **{f"{k}_runs": len(v) for k, v in trends.items()},
        **{f"{k}_significant": sum(r["significant"] for r in v) for k, v in trends.items()},
        "level": level,
        "min_slope": min_slope,
    }


def mock_vs_real(
    series: list[GiniSeries],
    *,
    n_boot: int = defaults.N_BOOT,
    seed: int = 0,
    level: float = 0.95,
    min_slope: float = 0.0,
    ref_batch: int = 8,
    trends: list[dict] | None = None,
) -> Verdict:
    """Mock vs real over GiniSeries of one or more models, compared within (model, seq_len).

    ``trends``: ``batch_trend`` of each series (same order) when already computed. Tables: summary
    (per model x mock x real condition: both slopes with intervals, the ratio at ``ref_batch``, the
    pair's verdict), evidence (per run and B: steps, mean per-step Gini and interval), trend (per
    run), ratio (per pair and B; ``at_ref`` marks the B of the summary). Overall verdict
    "fabricated by mock" when any pair is, "not fabricated" when some pair was judged, else
    "undetermined". A (model, seq_len) with only one kind is noted; none with both is an error.
    """
    if not series:
        raise DodocoError("mock vs real needs runs: pass a mock and a real-text run of each model")
    groups, notes = _groups(series)
    if trends is None:
        trends = [batch_trend(s.steps, n_boot, seed, level, min_slope) for s in series]
    by_id = {id(s): t for s, t in zip(series, trends)}
    evidence, trend_rows = _trend_rows(series, trends)
    ratio_rows, summary = [], []
    for model, L, mocks, reals in groups:
        for mk in mocks:
            for rl in reals:
                tm, tr = by_id[id(mk)], by_id[id(rl)]
                rows = _ratio_rows(model, mk, rl, tm, tr, level)
                ref = _ratio_at(rows, ref_batch)
                for r in rows:
                    r["at_ref"] = r is ref
                ratio_rows += rows
                summary.append(_summary_row(model, L, mk, rl, tm, tr, ref))
    notes += [
        f"{r['model']}/{r['condition']}: fewer than two batch sizes with more than two steps, no slope"
        for r in trend_rows
        if not np.isfinite(r["slope"])
    ]
    verdicts = {r["verdict"] for r in summary}
    overall = (
        FABRICATED if FABRICATED in verdicts else ("not fabricated" if verdicts - {NOT_JUDGED} else "undetermined")
    )
    numbers = _numbers(summary, trend_rows, ratio_rows, ref_batch, level, min_slope)
    from dodoco.findings.sentences import mock_real_sentences

    tables = {"summary": summary, "evidence": evidence, "trend": trend_rows, "ratio": ratio_rows}
    v = Verdict("mock_vs_real", overall, numbers, tables, notes)
    v.sentences = mock_real_sentences(v)
    return v
