"""Finding 1, EP invariance: does the expert straggler move when the EP degree N changes?

At a fixed per-rank batch B the EP scan (``dodoco.ep.scan.ep_scan``) gives, for each N, the per-step
per-expert max/mean and the per-rank receiver skew, summarised over steps. The relative change of a
quantity q over the scanned N is (max_N q_N - min_N q_N) / min_N q_N, with q_N the mean over steps
(model level: the mean over MoE layers per step; per layer: each layer's own). The verdict is
"intrinsic" when the model-level per-expert change is <= ``threshold`` (default 5%), else
"placement-sensitive". docs/findings.md derives it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict

__all__ = ["DEFAULT_THRESHOLD", "ep_invariance", "pick_batch", "relative_change", "scan_frame"]

DEFAULT_THRESHOLD = 0.05
INTRINSIC, SENSITIVE, UNDETERMINED = "intrinsic", "placement-sensitive", "undetermined"
_METRICS = ("max_mean", "receiver_skew")
_STATS = ("mean", "ci_lo", "ci_hi")
_TOL = 1e-12  # a change equal to the threshold up to rounding counts as within it


def relative_change(q) -> np.ndarray:
    """(max - min) / min over axis 0: q[n_N, ...] -> float64 [...]; NaN-ignoring, NaN if min <= 0."""
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = np.nanmin(q, axis=0), np.nanmax(q, axis=0)
        return np.where(lo > 0, (hi - lo) / lo, np.nan)


def scan_frame(scan: pa.Table, *, regime: str = "prefill", placement: str = "contiguous") -> dict:
    """The rows of one run's EP scan the verdict reads, as numpy columns.

    Keeps metric in (max_mean, receiver_skew), statistic in (mean, ci_lo, ci_hi), the given regime
    and placement. Raises DodocoError when the table holds several runs or lacks those rows.
    """
    d = {c: scan.column(c).to_numpy(zero_copy_only=False)
         for c in ("model", "condition", "seq_len", "regime", "batch", "ep", "placement", "layer",
                   "metric", "statistic", "value")}
    runs = sorted({(str(m), str(c), int(s)) for m, c, s in zip(d["model"], d["condition"], d["seq_len"])})
    if len(runs) > 1:
        named = ", ".join(f"{m}/{c}/L{s}" for m, c, s in runs)
        raise DodocoError(f"the EP invariance verdict is per run, but the scan table mixes runs: {named}; "
                          "scan and judge each run separately")
    keep = ((d["regime"] == regime) & (d["placement"] == placement) & np.isin(d["metric"], _METRICS)
            & np.isin(d["statistic"], _STATS))
    if not keep.any():
        have = sorted({(str(r), str(p)) for r, p in zip(d["regime"], d["placement"])})
        raise DodocoError(f"the EP scan has no {regime} rows for placement '{placement}' "
                          f"(it has {', '.join(f'{r}/{p}' for r, p in have) or 'no rows'}): "
                          "scan with that placement")
    out = {k: v[keep] for k, v in d.items()}
    out["run"] = runs[0]
    return out


def pick_batch(frame: dict, batch: int | None = None) -> int:
    """The batch B judged: ``batch`` if scanned, else the B scanned at the most N (ties: smallest B)."""
    bs, eps = frame["batch"], frame["ep"]
    per_b = {int(b): len(set(eps[bs == b].tolist())) for b in np.unique(bs)}
    if batch is not None:
        if int(batch) not in per_b:
            raise DodocoError(f"batch B={batch} is not in the EP scan (scanned: {sorted(per_b)}): "
                              "pick one of those or rescan with --batch")
        return int(batch)
    return min(per_b, key=lambda b: (-per_b[b], b))


def _grid(frame: dict, B: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(eps[n_N], layers[L+1] with -1 first, values {(metric, stat): [n_N, L+1]}) at batch B."""
    sel = frame["batch"] == B
    eps = np.unique(frame["ep"][sel])
    layers = np.unique(frame["layer"][sel])
    grid = {}
    for m in _METRICS:
        for s in _STATS:
            g = np.full((eps.size, layers.size), np.nan)
            k = sel & (frame["metric"] == m) & (frame["statistic"] == s)
            g[np.searchsorted(eps, frame["ep"][k]), np.searchsorted(layers, frame["layer"][k])] = \
                frame["value"][k]
            grid[(m, s)] = g
    return eps, layers, grid


def _judge(frame: dict, B: int, threshold: float) -> tuple[dict, list[dict], list[dict]]:
    """One run at batch B -> (summary row, evidence rows per N, per-layer rows)."""
    (model, condition, seq_len), regime = frame["run"], str(frame["regime"][0])
    placement = str(frame["placement"][0])
    eps, layers, g = _grid(frame, B)
    mm, rs = g[("max_mean", "mean")], g[("receiver_skew", "mean")]
    base = {"model": model, "condition": condition, "seq_len": seq_len, "regime": regime,
            "placement": placement, "batch": B}
    evidence = [{**base, "ep": int(N),
                 "max_mean": mm[i, 0], "max_mean_lo": g[("max_mean", "ci_lo")][i, 0],
                 "max_mean_hi": g[("max_mean", "ci_hi")][i, 0],
                 "receiver_skew": rs[i, 0], "receiver_skew_lo": g[("receiver_skew", "ci_lo")][i, 0],
                 "receiver_skew_hi": g[("receiver_skew", "ci_hi")][i, 0]} for i, N in enumerate(eps)]
    rel_mm, rel_rs = relative_change(mm), relative_change(rs)  # [L+1], index 0 = model level
    per_layer = [{**base, "layer": int(layer), "max_mean_change": rel_mm[j], "receiver_skew_change": rel_rs[j],
                  "over_threshold": bool(rel_mm[j] > threshold + _TOL)}
                 for j, layer in enumerate(layers) if layer >= 0]
    n_ok = eps.size >= 2 and np.isfinite(rel_mm[0])
    lay = rel_mm[1:]
    worst = int(layers[1:][np.nanargmax(lay)]) if lay.size and np.isfinite(lay).any() else -1
    summary = {**base, "eps": ",".join(str(int(n)) for n in eps),
               "max_mean_min": float(np.nanmin(mm[:, 0])), "max_mean_max": float(np.nanmax(mm[:, 0])),
               "max_mean_change": rel_mm[0], "layer_change_max": float(np.nanmax(lay)) if worst >= 0 else np.nan,
               "worst_layer": worst, "layers_over": int(np.sum(lay > threshold + _TOL)),
               "receiver_skew_change": rel_rs[0],
               "verdict": (INTRINSIC if rel_mm[0] <= threshold + _TOL else SENSITIVE) if n_ok else UNDETERMINED}
    return summary, evidence, per_layer


def ep_invariance(scans, *, batch: int | None = None, placement: str = "contiguous",
                  threshold: float = DEFAULT_THRESHOLD, regime: str = "prefill") -> Verdict:
    """EP invariance of one or more runs from their EP scan tables (one pyarrow Table per run).

    Per run: batch B (``pick_batch``), per-expert max/mean and receiver skew at each scanned N
    (evidence), their relative change over N at model level and per layer, and "intrinsic" /
    "placement-sensitive" ("undetermined" with fewer than two N). Overall: "intrinsic" when every
    judged run is, "placement-sensitive" when none is, else "mixed".
    """
    if isinstance(scans, pa.Table):
        scans = [scans]
    if not threshold >= 0:
        raise DodocoError(f"EP invariance threshold must be >= 0 (a fraction, 0.05 = 5%), got {threshold}")
    summary, evidence, layers, notes = [], [], [], []
    for scan in scans:
        frame = scan_frame(scan, regime=regime, placement=placement)
        row, ev, lay = _judge(frame, pick_batch(frame, batch), threshold)
        summary.append(row)
        evidence += ev
        layers += lay
        if row["verdict"] == UNDETERMINED:
            notes.append(f"{row['model']}/{row['condition']}: only EP={row['eps']} fits at B={row['batch']}; "
                         "observe more sequences to scan at least two EP degrees")
    verdicts = {r["verdict"] for r in summary if r["verdict"] != UNDETERMINED}
    overall = UNDETERMINED if not verdicts else (verdicts.pop() if len(verdicts) == 1 else "mixed")
    changes = [r["max_mean_change"] for r in summary if np.isfinite(r["max_mean_change"])]
    numbers = {"threshold": threshold, "placement": placement, "regime": regime, "runs": len(summary),
               "intrinsic_runs": sum(r["verdict"] == INTRINSIC for r in summary),
               "max_change": max(changes) if changes else float("nan")}
    return Verdict("ep_invariance", overall, numbers,
                   {"summary": summary, "evidence": evidence, "layers": layers}, notes)
