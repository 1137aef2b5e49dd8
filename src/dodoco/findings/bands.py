"""Finding 3, bands: which routing band is each model in, judged on real text?

Input: one Gini per (model, condition) (the report uses the per-step mean model-level Gini at a
reference batch size). Per model, over its real-text conditions:

- "persistently concentrated": Gini >= ``high`` (default 0.24) on every real condition;
- "data-resilient": Gini <= ``low`` (default 0.15) on ``resilient_condition`` (default prose; the
  lowest real condition when the model has no prose run);
- "intermediate": neither.

The defaults are the paper's: its data-resilient models reach 0.105 and 0.150 on wikitext, its
concentrated ones stay above 0.24 on every real condition. A grouping derived from the data sits
beside them: the models' mean real-text Gini, sorted, split at the k - 1 largest gaps (default k=2,
the paper's two bands); the split is "separated" when the smallest splitting gap is larger than the
spread (max - min) inside every group. docs/findings.md.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict, require_same

__all__ = ["CONCENTRATED", "DEFAULT_HIGH", "DEFAULT_LOW", "INTERMEDIATE", "RESILIENT", "bands", "gap_groups"]

DEFAULT_LOW, DEFAULT_HIGH = 0.15, 0.24
RESILIENT, INTERMEDIATE, CONCENTRATED = "data-resilient", "intermediate", "persistently concentrated"


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
        sorted_group[c + 1:] += 1
    group[order] = sorted_group
    spread = max(float(np.ptp(s[sorted_group == g])) for g in range(k))
    min_gap = float(gaps[cuts].min())
    return group, min_gap, bool(min_gap > spread)


def _band(values: dict[str, float], low: float, high: float, resilient_condition: str) -> tuple[str, str, float]:
    """(band, condition judged for resilience, its Gini) of one model from {real condition: Gini}."""
    if min(values.values()) >= high:
        cond = min(values, key=values.get)
        return CONCENTRATED, cond, values[cond]
    cond = resilient_condition if resilient_condition in values else min(values, key=values.get)
    return (RESILIENT if values[cond] <= low else INTERMEDIATE), cond, values[cond]


def bands(rows: list[dict], *, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH,
          resilient_condition: str = "prose", k: int = 2) -> Verdict:
    """Bands of models from rows {model, condition, kind ("mock"/"real"), seq_len, gini[, run]}.

    All rows must share one seq_len (DodocoError naming the runs otherwise). Mock rows are kept as
    evidence but do not decide a band. Tables: summary (per model: band, data group), evidence
    (the input rows). Overall verdict: "<band>: models; ..." in band order.
    """
    if not 0 <= low < high:
        raise DodocoError(f"band thresholds need 0 <= low < high, got low={low}, high={high}")
    rows = list(rows)
    require_same(rows, ("seq_len",), "the bands verdict")
    real: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["kind"] == "real" and np.isfinite(r["gini"]):
            real.setdefault(r["model"], {})[r["condition"]] = float(r["gini"])
    if not real:
        raise DodocoError("the bands verdict needs real-text runs (prose, code, math, multilingual, file:, hf:); "
                          "observe at least one real-text condition")
    models = list(real)
    notes = [f"model {m} has no real-text run and gets no band" for m in dict.fromkeys(r["model"] for r in rows)
             if m not in real]
    mean_real = np.array([np.mean(list(real[m].values())) for m in models])
    group, min_gap, separated = gap_groups(mean_real, k)
    summary = []
    for i, m in enumerate(models):
        band, cond, value = _band(real[m], low, high, resilient_condition)
        if cond != resilient_condition and band != CONCENTRATED:
            notes.append(f"model {m} has no {resilient_condition} run: judged on its lowest real condition {cond}")
        summary.append({"model": m, "band": band, "judged_on": cond, "judged_gini": value,
                        "real_min": min(real[m].values()), "real_max": max(real[m].values()),
                        "real_mean": float(mean_real[i]), "real_conditions": len(real[m]),
                        "data_group": int(group[i]) + 1})
    order = (RESILIENT, INTERMEDIATE, CONCENTRATED)
    overall = "; ".join(f"{b}: {', '.join(r['model'] for r in summary if r['band'] == b)}"
                        for b in order if any(r["band"] == b for r in summary))
    numbers = {"low": low, "high": high, "resilient_condition": resilient_condition, "k": k,
               "groups": int(group.max()) + 1, "group_gap": min_gap, "groups_separated": separated,
               **{b: [r["model"] for r in summary if r["band"] == b] for b in order}}
    evidence = [{k_: r.get(k_) for k_ in ("model", "condition", "kind", "seq_len", "gini")} for r in rows]
    return Verdict("bands", overall, numbers, {"summary": summary, "evidence": evidence}, notes)
