"""Finding 3, bands: which routing band is each model in, judged on real text, and how sure?

Input: one Gini per (model, condition) with its 95% interval and the steps it rests on (``judge``
uses the per-step mean model-level Gini at the reference batch). Models are compared within one
sequence length. Per model, over its real-text conditions:

- "persistently concentrated": Gini >= ``high`` (default 0.24) on every real condition;
- "data-resilient": Gini <= ``low`` (default 0.15) on ``resilient_condition`` (default prose; the
  lowest real condition when the model has no prose run);
- "intermediate": neither.

How sure ("certainty"): "sure" when the intervals of the values that decide the band lie on the
decided side of their thresholds, "borderline" when an interval straddles a threshold, "few steps"
when a deciding value rests on two steps or fewer (no interval).

The defaults are the paper's: its data-resilient models reach 0.105 and 0.150 on wikitext, its
concentrated ones stay above 0.24 on every real condition. A grouping derived from the data sits
beside them: the models' mean real-text Gini, sorted, split at the k - 1 largest gaps (default k=2,
the paper's two bands); the split is "separated" when the smallest splitting gap is larger than the
spread (max - min) inside every group. docs/findings.md.
"""

from __future__ import annotations

import numpy as np

from dodoco import defaults
from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict, few

__all__ = ["CONCENTRATED", "DEFAULT_HIGH", "DEFAULT_LOW", "INTERMEDIATE", "RESILIENT", "bands", "gap_groups"]

DEFAULT_LOW, DEFAULT_HIGH = defaults.BAND_LOW, defaults.BAND_HIGH
RESILIENT, INTERMEDIATE, CONCENTRATED = "data-resilient", "intermediate", "persistently concentrated"
SURE, BORDERLINE, FEW = "sure", "borderline", "few steps"
_ORDER = (RESILIENT, INTERMEDIATE, CONCENTRATED)


def gap_groups(values, k: int = 2) -> tuple[np.ndarray, float, bool]:
    """Split values[M] at the k-1 largest gaps of their sorted order -> (group[M], min gap, separated).

    group[i] = 0 for the lowest group .. k'-1 (k' = min(k, number of distinct values)); ties in gap
    size split at the lower position. ``separated``: the smallest splitting gap exceeds every
    group's spread. One group: (zeros, NaN, False).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise DodocoError(f"gap grouping needs finite values, got {values!r}")
    order = np.argsort(v, kind="stable")
    s = v[order]
    gaps = np.diff(s)
    k = int(min(max(1, k), np.unique(s).size))
    group = np.zeros(v.size, dtype=np.int64)
    if k == 1:
        return group, float("nan"), False
    cuts = np.sort(np.argsort(-gaps, kind="stable")[: k - 1])  # split after sorted position c
    sorted_group = np.zeros(v.size, dtype=np.int64)
    for c in cuts:
        sorted_group[c + 1 :] += 1
    group[order] = sorted_group
    spread = max(float(np.ptp(s[sorted_group == g])) for g in range(k))
    min_gap = float(gaps[cuts].min())
    return group, min_gap, bool(min_gap > spread)


def _side(row: dict, threshold: float, above: bool) -> str:
    """Certainty that ``row``'s Gini is on its side (``above`` or below) of ``threshold``."""
    if few(row.get("steps", 3)) or not np.isfinite(row.get("gini_lo", np.nan)):
        return FEW
    lo, hi = row["gini_lo"], row["gini_hi"]
    return SURE if (lo >= threshold if above else hi <= threshold) else BORDERLINE


def _worst(*levels: str) -> str:
    return max(levels, key=(FEW, BORDERLINE, SURE)[::-1].index)


def _band(real: dict[str, dict], low: float, high: float, resilient_condition: str) -> dict:
    """Band of one model from {real condition: row}: band, the deciding condition, certainty."""
    gini = {c: r["gini"] for c, r in real.items()}
    lowest = min(gini, key=gini.get)
    if gini[lowest] >= high:
        return {"band": CONCENTRATED, "judged_on": lowest, "certainty": _side(real[lowest], high, True)}
    cond = resilient_condition if resilient_condition in gini else lowest
    if gini[cond] <= low:
        return {"band": RESILIENT, "judged_on": cond, "certainty": _side(real[cond], low, False)}
    # intermediate: the resilient condition above low, and some real condition below high
    return {
        "band": INTERMEDIATE,
        "judged_on": cond,
        "certainty": _worst(_side(real[cond], low, True), _side(real[lowest], high, False)),
    }


def _one_length(rows: list[dict], low, high, resilient_condition, k) -> tuple[list[dict], dict, list[str]]:
    """Bands of the models of one seq_len -> (summary rows, grouping numbers, notes)."""
    real: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["kind"] == "real" and np.isfinite(r["gini"]):
            real.setdefault(r["model"], {})[r["condition"]] = r
    L = rows[0]["seq_len"]
    notes = [
        f"{m} (seq_len {L}) has no real-text run and gets no band"
        for m in dict.fromkeys(r["model"] for r in rows)
        if m not in real
    ]
    if not real:
        return [], {}, notes
    models = list(real)
    mean_real = np.array([np.mean([r["gini"] for r in real[m].values()]) for m in models])
    group, min_gap, separated = gap_groups(mean_real, k)
    summary = []
    for i, m in enumerate(models):
        b = _band(real[m], low, high, resilient_condition)
        if b["judged_on"] != resilient_condition and b["band"] != CONCENTRATED:
            notes.append(f"{m} has no {resilient_condition} run: judged on its lowest real condition {b['judged_on']}")
        judged = real[m][b["judged_on"]]
        vals = [r["gini"] for r in real[m].values()]
        summary.append(
            {
                "model": m,
                "seq_len": L,
                **b,
                "judged_gini": judged["gini"],
                "judged_lo": judged.get("gini_lo", np.nan),
                "judged_hi": judged.get("gini_hi", np.nan),
                "steps": min(r.get("steps", 3) for r in real[m].values()),
                "real_min": min(vals),
                "real_max": max(vals),
                "real_mean": float(mean_real[i]),
                "real_conditions": len(vals),
                "data_group": int(group[i]) + 1,
            }
        )
    grouping = {"seq_len": L, "groups": int(group.max()) + 1, "group_gap": min_gap, "groups_separated": separated}
    return summary, grouping, notes


def _verdict_parts(summary: list[dict]) -> list[str]:
    """'<band>: models; ...' per seq_len (prefixed by 'seq_len L:' when several are judged)."""
    lengths = sorted({r["seq_len"] for r in summary})
    parts = []
    for L in lengths:
        own = [r for r in summary if r["seq_len"] == L]
        text = "; ".join(
            f"{b}: {', '.join(r['model'] for r in own if r['band'] == b)}"
            for b in _ORDER
            if any(r["band"] == b for r in own)
        )
        parts.append(f"seq_len {L}: {text}" if len(lengths) > 1 else text)
    return parts


def bands(
    rows: list[dict],
    *,
    low: float = DEFAULT_LOW,
    high: float = DEFAULT_HIGH,
    resilient_condition: str = "prose",
    k: int = 2,
    batch: int | None = None,
) -> Verdict:
    """Bands of models from rows {model, condition, kind ("mock"/"real"), seq_len, gini[, gini_lo,
    gini_hi, steps, run]}, judged per seq_len.

    Mock rows are kept as evidence but do not decide a band. Tables: summary (per model and seq_len:
    band, deciding condition and its Gini with interval, certainty, data group), grouping (per
    seq_len), evidence (the input rows). Overall verdict: "<band>: models; ..." in band order
    (prefixed by "seq_len L:" when several lengths are judged).
    """
    if not 0 <= low < high:
        raise DodocoError(f"band thresholds need 0 <= low < high, got low={low}, high={high}")
    rows = list(rows)
    summary, grouping, notes = [], [], []
    for L in sorted({r["seq_len"] for r in rows}):
        s, g, n = _one_length([r for r in rows if r["seq_len"] == L], low, high, resilient_condition, k)
        summary += s
        grouping += [g] if g else []
        notes += n
    if not summary:
        raise DodocoError(
            "the bands verdict needs real-text runs (prose, code, math, multilingual, file:, hf:); "
            "observe at least one real-text condition"
        )
    parts = _verdict_parts(summary)
    numbers = {
        "low": low,
        "high": high,
        "resilient_condition": resilient_condition,
        "k": k,
        "batch": batch,
        **{b: sorted({r["model"] for r in summary if r["band"] == b}) for b in _ORDER},
        "sure": sum(r["certainty"] == SURE for r in summary),
        "models": len(summary),
    }
    evidence = [
        {
            k_: r.get(k_)
            for k_ in ("model", "condition", "kind", "seq_len", "batch", "steps", "gini", "gini_lo", "gini_hi")
        }
        for r in rows
    ]
    from dodoco.findings.sentences import bands_sentences

    v = Verdict(
        "bands", " | ".join(parts), numbers, {"summary": summary, "grouping": grouping, "evidence": evidence}, notes
    )
    v.sentences = bands_sentences(v)
    return v
