"""``dodoco analyze --ep/--placement``: the EP scan table of each run, printed and as JSON.

Called by ``dodoco.commands.analyze.run`` after the summary table. One row per (run, regime, batch,
EP degree, placement), model level (mean over MoE layers per step, then the mean over steps with its
bootstrap 95% interval). Runs holding one window aggregate get rank loads of that window
(batch 0). ``--json PATH`` writes this table to ``<PATH stem>.ep.json`` beside the summary's PATH
(``-``: printed to stdout after the summary's JSON).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["ep_json_path", "pivot_scan", "run_ep", "scan_rows", "window_rows"]

#: Columns of the printed table (every metric the scan has is in the JSON).
COLUMNS = ["model", "condition", "regime", "batch", "ep", "placement", "max_mean", "receiver_skew",
           "receiver_skew_lo", "receiver_skew_hi", "local_fraction"]
_STAT_SUFFIX = {"mean": "", "ci_lo": "_lo", "ci_hi": "_hi", "p50": "_p50", "p95": "_p95"}


def pivot_scan(table, layer: int = -1) -> list[dict]:
    """EP scan table (tidy) -> one dict per (model, condition, seq_len, regime, batch, ep, placement)
    with a column per metric and statistic (mean: the metric name; ci_lo: ``_lo``; ci_hi: ``_hi``)."""
    keys = ("model", "condition", "seq_len", "regime", "batch", "ep", "placement")
    d = {c: table.column(c).to_numpy(zero_copy_only=False) for c in keys + ("layer", "metric", "statistic", "value")}
    keep = np.flatnonzero(d["layer"] == layer)
    out: dict[tuple, dict] = {}
    for i in keep:
        key = tuple(d[k][i].item() if hasattr(d[k][i], "item") else d[k][i] for k in keys)
        row = out.setdefault(key, dict(zip(keys, key)))
        row[f"{d['metric'][i]}{_STAT_SUFFIX.get(d['statistic'][i], '_' + d['statistic'][i])}"] = float(d["value"][i])
    return list(out.values())


def scan_rows(run, ep=None, batch=None, placement=None, seed: int = 0) -> tuple[list[dict], list[str]]:
    """(pivoted EP scan rows, notes on skipped pairs) of one per-step run.

    Raises DodocoError naming the sequence count needed when no requested (EP, batch) pair fits.
    """
    from dodoco.ep.scan import DEFAULT_BATCH, require_sequences, scan_plan, skipped_reasons
    from dodoco.findings.runs import default_eps, scan_run

    S, E = int(run.counts.shape[0]), int(run.counts.shape[2])
    eps, batches = list(ep or default_eps(E)), list(batch or DEFAULT_BATCH)
    if not scan_plan(S, eps, batches)[0]:
        require_sequences(S, min(eps), min(batches))  # raises: even the smallest step does not fit
    table = scan_run(run, ep=eps, batch=batches, placement=placement or ["contiguous"], seed=seed)
    rows, skipped = pivot_scan(table), skipped_reasons(table)
    sizes = [f"{s['ep']}x{s['batch']}" for s in skipped if s["placement"] is None]
    notes = [f"{run.path}: skipped EP x batch {', '.join(sizes)} (more than its {S} sequences, or than the "
             "held-out part for fitted placements)"] if sizes else []
    notes += [f"{run.path}: skipped EP={s['ep']} {s['placement']}: {s['reason']}" for s in skipped
              if s["placement"] is not None]
    return rows, notes


def window_rows(run, ep=None, placement=None) -> tuple[list[dict], list[str]]:
    """Rank loads of a window-aggregate run: per EP degree and fixed placement, the per-layer
    receiver skew of the whole window (mean over layers), batch 0."""
    from dodoco.ep.loads import rank_loads, receiver_skew
    from dodoco.ep.placement import FITTED, fit_placement
    from dodoco.errors import DodocoError
    from dodoco.findings.runs import default_eps
    from dodoco.metrics.imbalance import gini, max_mean

    agg = np.asarray(run.counts).sum(axis=0, dtype=np.int64)  # [L, E]
    E = agg.shape[1]
    rows, notes = [], []
    base = {"model": run.model, "condition": run.condition, "seq_len": run.seq_len, "regime": "window", "batch": 0}
    for N in ep or default_eps(E):
        for name in placement or ["contiguous"]:
            if name in FITTED:
                notes.append(f"{run.path}: {name} is fitted on held-out steps; a window aggregate has none")
                continue
            try:
                p = fit_placement(name, E, N)
            except DodocoError as exc:
                notes.append(f"{run.path}: EP={N} {name}: {exc}")
                continue
            rs = receiver_skew(rank_loads(agg, p))
            rows.append({**base, "ep": int(N), "placement": name, "max_mean": float(np.nanmean(max_mean(agg))),
                         "gini": float(np.nanmean(gini(agg))), "receiver_skew": float(np.nanmean(rs))})
    return rows, notes


def ep_json_path(json_path: str) -> str:
    """Where the EP table's JSON goes for ``--json json_path``: '-' stays '-', a.json -> a.ep.json."""
    if json_path == "-":
        return "-"
    p = Path(json_path)
    return str(p.with_name(f"{p.stem}.ep{p.suffix or '.json'}"))


def run_ep(args) -> int:
    """Print the EP scan of every run named in ``args.runs`` (``--ep``, ``--batch``, ``--placement``)."""
    import sys

    from dodoco.commands import emit
    from dodoco.ep.placement import PLACEMENTS
    from dodoco.errors import did_you_mean
    from dodoco.store.run import find_runs

    for name in args.placement or []:
        if name not in PLACEMENTS:
            raise did_you_mean("placement", name, PLACEMENTS)
    rows, notes = [], []
    for run in find_runs(args.runs):
        if run.granularity == "window":
            r, n = window_rows(run, args.ep, args.placement)
        else:
            r, n = scan_rows(run, args.ep, args.batch, args.placement)
        rows += r
        notes += n
    json_path = ep_json_path(args.json) if args.json else None
    emit(rows, "EP scan (model level: mean over steps, bootstrap 95% interval)", json_path=json_path,
         columns=[c for c in COLUMNS if rows and any(c in r for r in rows)] or None)
    if json_path != "-":
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    return 0
