"""Where a dispatcher's cost bends with receiver skew, from the calibration grid of a replay.

Shape legend: N EP ranks.
"""

from __future__ import annotations

__all__ = ["bend_points"]


def bend_points(rows: list[dict], threshold: float = 0.05) -> list[dict]:
    """Where each dispatcher's cost bends with receiver skew, per pattern and per-rank size (grid rows).

    For every (dispatcher, pattern, per-rank size) of the grid: ``ratios`` {rho: dispatch median /
    the same size's rho = 1 median} and ``knee_rho``, the smallest target skew whose time exceeds the
    balanced time by more than ``threshold`` (None: none did, up to the largest rho replayed).
    """
    groups: dict = {}
    for r in rows:
        if r["kind"] == "grid":
            key = (r["dispatcher"], r["pattern"], float(f"{r['per_rank_bytes'] / 2**20:.3g}"))
            groups.setdefault(key, {})[float(r["rho"])] = r["dispatch"]["median_ms"]
    out = []
    for (disp, pattern, mib), t in sorted(groups.items()):
        if 1.0 not in t or not t[1.0]:
            continue
        ratios = {rho: t[rho] / t[1.0] for rho in sorted(t)}
        knee = next((rho for rho, q in ratios.items() if q > 1 + threshold), None)
        out.append(
            {
                "dispatcher": disp,
                "pattern": pattern,
                "MiB_per_rank": mib,
                "balanced_ms": t[1.0],
                "knee_rho": knee,
                "ratio_at_2": ratios.get(2.0),
                "ratios": ratios,
            }
        )
    return out
