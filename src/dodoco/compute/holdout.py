"""How well a compute model predicts measured ranks it was not fitted on: pure numpy.

``held_out`` predicts measured ranks (real routing, never in the calibration grid) with a model
and returns per-rank relative errors; ``error_table`` summarises absolute errors (median, p90,
max, count) by tokens per rank and by EP degree, and over the target range (128 to 8192 tokens
per rank, EP 4 to 64). The tokens-only model (``fit.FORMS['tokens']`` fitted on the same grid) is
summarised beside every model, so a reader sees what the per-expert structure buys.
``routing_vs_even`` compares measured ranks of real routing with their balanced controls (the same
tokens spread evenly over the same experts), per tokens-per-expert band: why the compute straggler
is measured against the mean rank, not against an even rank (docs/compute.md section 5).

Shape legend: R ranks.
"""

from __future__ import annotations

import numpy as np

from dodoco.compute.features import pad_loads

__all__ = ["TOKEN_BINS", "error_table", "held_out", "routing_vs_even", "summary"]

TOKEN_BINS = ((1, 127), (128, 511), (512, 2047), (2048, 8192), (8193, 1 << 40))
TARGET_TOKENS = (128, 8192)
TARGET_EP = (4, 64)
EXPERT_BANDS = ((0, 4), (4, 16), (16, 64), (64, 1 << 40))


def held_out(model, rows) -> np.ndarray:
    """Relative errors (pred - measured) / measured of rows [{loads, shape, ms}] -> float64 [R]."""
    out = np.empty(len(rows))
    by_shape = {}
    for i, r in enumerate(rows):
        by_shape.setdefault(r["shape"], []).append(i)
    for shape, idx in by_shape.items():
        t, valid = pad_loads([rows[i]["loads"] for i in idx])
        pred = model.predict_padded(t, valid, shape)
        ms = np.array([rows[i]["ms"] for i in idx], dtype=np.float64)
        out[idx] = (pred - ms) / ms
    return out


def summary(err) -> dict:
    """{n, median_abs_err, p90_abs_err, max_abs_err, bias} of relative errors (NaN: not predicted, left out)."""
    err = np.asarray(err, dtype=np.float64)
    err = err[np.isfinite(err)]
    e = np.abs(err)
    if e.size == 0:
        return {"n": 0, "median_abs_err": None, "p90_abs_err": None, "max_abs_err": None, "bias": None}
    return {
        "n": int(e.size),
        "median_abs_err": float(np.median(e)),
        "p90_abs_err": float(np.quantile(e, 0.9)),
        "max_abs_err": float(e.max()),
        "bias": float(np.median(err)),
    }


def error_table(rows, errors: dict) -> list[dict]:
    """Rows of absolute-error summaries per model name in ``errors`` ({name: err[R]}): the target range
    first, then each tokens-per-rank bin and each EP degree."""
    tok = np.array([int(np.sum(r["loads"])) for r in rows])
    ep = np.array([int(r.get("N", 0)) for r in rows])
    groups = [
        (
            "target: 128-8192 tokens/rank, EP 4-64",
            (tok >= TARGET_TOKENS[0]) & (tok <= TARGET_TOKENS[1]) & (ep >= TARGET_EP[0]) & (ep <= TARGET_EP[1]),
        ),
        ("all ranks", np.ones(len(rows), dtype=bool)),
    ]
    groups += [
        (f"tokens/rank {lo}-{hi if hi < 1 << 40 else 'max'}", (tok >= lo) & (tok <= hi)) for lo, hi in TOKEN_BINS
    ]
    groups += [(f"EP {n}", ep == n) for n in sorted(set(ep.tolist())) if n]
    out = []
    for label, m in groups:
        for name, err in errors.items():
            out.append({"group": label, "model": name, **summary(np.asarray(err)[m])})
    return out


def routing_vs_even(pairs, faster: float = 0.98) -> list[dict]:
    """Measured real-routing ranks against their balanced controls: pairs [(routing_row, control_row)]
    with {loads, ms} each -> one row per tokens-per-expert band (tokens / experts of the rank) and one
    for all: {band, n, faster (routing below ``faster`` x its even spread), median_ratio, min_ratio}."""
    ratio = np.array([a["ms"] / b["ms"] for a, b in pairs], dtype=np.float64)
    tpe = np.array([np.sum(a["loads"]) / max(1, len(a["loads"])) for a, _ in pairs], dtype=np.float64)
    bands = [("all", np.ones(len(pairs), dtype=bool))] + [
        (f"{lo}-{hi if hi < 1 << 40 else 'max'} tokens/expert", (tpe >= lo) & (tpe < hi)) for lo, hi in EXPERT_BANDS
    ]
    return [
        {
            "band": band,
            "n": int(m.sum()),
            "faster": int((ratio[m] < faster).sum()),
            "median_ratio": float(np.median(ratio[m])) if m.any() else None,
            "min_ratio": float(ratio[m].min()) if m.any() else None,
        }
        for band, m in bands
    ]
