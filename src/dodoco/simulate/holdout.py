"""Validation of the chosen model on routing replays never used to fit it nor to choose it.

Only samples of role ``validate`` (``dodoco.simulate.samples``) are scored: absolute percentage
errors of the chosen form, with the naive-max and volume-only baselines (fitted on the same
calibration samples) beside it, pooled over dispatch and combine. ``validation_rows`` gives one row
per (machine, dispatcher, N, size band) with the median and p90 of each; ``form_rows`` scores every
candidate form on the same samples (after the choice, for the record); ``target_rows`` checks the
targets (median <= 5%, p90 <= 10% over 16..512 MB per rank); ``split_rows`` counts the samples of
each role; ``leaks`` names validation samples that also feed a fit (there must be none).

Shape legend: N EP ranks.
"""

from __future__ import annotations

import hashlib

import numpy as np

from dodoco.metrics.imbalance import max_mean
from dodoco.simulate.fit import pct_errors
from dodoco.simulate.forms import BASELINES, CANDIDATES, feats

__all__ = ["BANDS_MB", "band", "form_rows", "leaks", "split_rows", "target_rows", "validation_rows"]

BANDS_MB = (16, 64, 256)
TARGET_MEDIAN, TARGET_P90 = 5.0, 10.0


def band(mb: float) -> str:
    """Size band of a per-rank size in MB: <16, 16-64, 64-256, >=256."""
    if mb < BANDS_MB[0]:
        return f"<{BANDS_MB[0]} MB"
    for lo, hi in zip(BANDS_MB, BANDS_MB[1:]):
        if mb < hi:
            return f"{lo}-{hi} MB"
    return f">={BANDS_MB[-1]} MB"


def _p90(x) -> float:
    return float(np.percentile(x, 90)) if len(x) else float("nan")


def _recv_skew(g) -> np.ndarray:
    """Receiver skew of each sample's dispatch: max/mean column sum (combine samples are transposed)."""
    cols = g.b.sum(-2) if g.phase == "dispatch" else g.b.sum(-1)
    return max_mean(cols)


def _scored(records, groups) -> list[dict]:
    """Per validate sample: keys, size, skew, grid flag and the abs % error of every fitted form."""
    rec_by_key = {(r["machine"], r["N"], r["dispatcher"], r["phase"]): r for r in records if "fits" in r}
    out = []
    for g in groups:
        rec = rec_by_key.get(g.key)
        v = g.of_role("validate")
        if rec is None or v.t.size == 0:
            continue
        x = feats(v.b).x
        on_grid = np.isin(np.round(x / 1e6, 1), rec["fit_sizes_MB"])
        errs = {name: pct_errors(fit.predict(v.b), v.t) for name, fit in rec["fits"].items()}
        skew = _recv_skew(v)
        for i in range(v.t.size):
            out.append(
                {
                    "machine": g.machine,
                    "dispatcher": g.dispatcher,
                    "N": g.N,
                    "phase": g.phase,
                    "id": v.ids[i],
                    "MB": float(x[i] / 1e6),
                    "skew": float(skew[i]),
                    "on_grid": bool(on_grid[i]),
                    "chosen": rec["chosen"],
                    **{f"err_{k}": float(e[i]) for k, e in errs.items()},
                }
            )
    return out


def _summary(rows: list[dict]) -> dict:
    model = [r[f"err_{r['chosen']}"] for r in rows]
    out = {
        "samples": len(rows),
        "MB_per_rank": float(np.mean([r["MB"] for r in rows])),
        "recv_skew_max": float(np.max([r["skew"] for r in rows])),
        "recv_skew_mean": float(np.mean([r["skew"] for r in rows])),
        "on_grid": int(sum(r["on_grid"] for r in rows)),
        "form": ",".join(sorted({r["chosen"] for r in rows})),
        "model_median_pct": float(np.median(model)),
        "model_p90_pct": _p90(model),
    }
    for b in BASELINES:
        e = [r[f"err_{b}"] for r in rows]
        out[f"{b}_median_pct"], out[f"{b}_p90_pct"] = float(np.median(e)), _p90(e)
    return out


def _grouped(scored, key) -> dict:
    out = {}
    for r in scored:
        out.setdefault(key(r), []).append(r)
    return out


def validation_rows(records, groups) -> list[dict]:
    """One row per (machine, dispatcher, N, size band) of the held-out routing samples."""
    scored = _scored(records, groups)
    by = _grouped(scored, lambda r: (r["machine"], r["dispatcher"], r["N"], band(r["MB"])))
    return [
        {"machine": k[0], "dispatcher": k[1], "N": k[2], "band": k[3], **_summary(v)} for k, v in sorted(by.items())
    ]


def target_rows(records, groups) -> list[dict]:
    """Targets per (machine, dispatcher, N) over held-out samples of 16..512 MB per rank."""
    scored = [r for r in _scored(records, groups) if BANDS_MB[0] <= r["MB"] <= 512 * 1.05]
    by = _grouped(scored, lambda r: (r["machine"], r["dispatcher"], r["N"]))
    rows = []
    for k, v in sorted(by.items()):
        s = _summary(v)
        rows.append(
            {
                "machine": k[0],
                "dispatcher": k[1],
                "N": k[2],
                "samples": s["samples"],
                "recv_skew_max": s["recv_skew_max"],
                "median_pct": s["model_median_pct"],
                "p90_pct": s["model_p90_pct"],
                "target": f"median <= {TARGET_MEDIAN}%, p90 <= {TARGET_P90}%",
                "met": s["model_median_pct"] <= TARGET_MEDIAN and s["model_p90_pct"] <= TARGET_P90,
                "off_grid_samples": s["samples"] - s["on_grid"],
            }
        )
    return rows


def form_rows(records, groups) -> list[dict]:
    """Median / p90 abs % error of every form on the held-out samples, per (machine, dispatcher, N)."""
    by = _grouped(_scored(records, groups), lambda r: (r["machine"], r["dispatcher"], r["N"]))
    rows = []
    for k, v in sorted(by.items()):
        for name in CANDIDATES + BASELINES:
            e = [r[f"err_{name}"] for r in v]
            rows.append(
                {
                    "machine": k[0],
                    "dispatcher": k[1],
                    "N": k[2],
                    "form": name,
                    "chosen": name in {r["chosen"] for r in v},
                    "samples": len(e),
                    "median_pct": float(np.median(e)),
                    "p90_pct": _p90(e),
                }
            )
    return rows


def split_rows(groups) -> list[dict]:
    """Samples per role for each (machine, dispatcher, N, phase)."""
    rows = []
    for g in groups:
        roles = {r: int(sum(x == r for x in g.role)) for r in ("fit", "select", "validate", "control")}
        rows.append({"machine": g.machine, "dispatcher": g.dispatcher, "N": g.N, "phase": g.phase, **roles})
    return rows


def _digest(b, t) -> str:
    return hashlib.sha256(np.round(np.asarray(b, dtype=np.float64), 0).tobytes() + np.float64(t).tobytes()).hexdigest()


def leaks(groups) -> list[str]:
    """Validate samples that also feed a fit: a case id with another role elsewhere, or the same bytes
    and time as a fit sample (one measurement loaded twice). Must be []."""
    roles, fit_digests = {}, set()
    for g in groups:
        for i, r, b, t in zip(g.ids, g.role, g.b, g.t):
            roles.setdefault(i, set()).add(r)
            if r == "fit":
                fit_digests.add(_digest(b, t))
    out = [i for i, rs in roles.items() if "validate" in rs and len(rs) > 1]
    for g in groups:
        out += [i for i, r, b, t in zip(g.ids, g.role, g.b, g.t) if r == "validate" and _digest(b, t) in fit_digests]
    return sorted(set(out))
