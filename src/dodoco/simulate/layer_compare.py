"""The whole-layer replay beside ``dodoco simulate``'s whole-layer prediction, row by row.

For each layer replay (``dodoco replay --layer``: one run, condition, batch, N) and each dispatcher it
measured, the measured means over its cases (the step set by the slowest rank, ``whole_layer``) sit
beside ``simulate.layer.simulate_ep``'s prediction on exactly the replayed steps and layers (the run's
counts at those layers, the same seeded step order, batch and N) with compute = (compute model, the
replay's expert shape), from each calibration given (``predictors``): a calibration made on this
machine (``dodoco calibrate``), and separately the shipped preset (dgx-h200's dispatch fits; the
compute model shipped for the GPU, else this machine's, which its label says). ``targets`` summarises
the absolute errors per dispatcher over a band of per-rank sizes.

Shape legend: N ranks, L MoE layers, E routed experts, H hidden size, I expert width.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compare_rows", "measured", "predict", "predictors", "targets"]


def predictors(cal_path, allow_dry_run: bool = False, preset: str = "dgx-h200") -> dict:
    """{'same machine': (AlltoallTimer, ComputeModel, label), 'preset': ...} for ``predict``."""
    from dodoco.compute.model import resolve_model
    from dodoco.errors import DodocoError
    from dodoco.simulate.calibration import load_calibration
    from dodoco.simulate.cluster import AlltoallTimer, Cluster, load_cluster, preset_calibration

    cal = load_calibration(cal_path, allow_dry_run=allow_dry_run)
    here = Cluster(
        name=cal.host.get("machine", "here"),
        gpus_per_node=max(8, int(cal.host.get("gpu_count") or 0)),
        nvlink_bw=450.0,
        nic_bw=50.0,
        gpu=str(cal.host.get("gpu_key") or ""),
    )
    own = cal.compute_model("grouped_mm")
    try:
        shipped, how = resolve_model(cal.host.get("gpu_key") or "h200", "grouped_mm"), "shipped compute model"
    except DodocoError:
        shipped, how = own, "this machine's compute model (none ships)"
    pc = preset_calibration(preset)
    return {
        "same machine": (AlltoallTimer(here, cal), own, cal.describe()),
        "preset": (
            AlltoallTimer(load_cluster(preset), pc),
            shipped,
            f"{preset} preset ({pc.describe() if pc else 'uncalibrated'}); {how}",
        ),
    }


def measured(res: dict, d: str) -> dict:
    """Means over the cases of the replay's condition (kind real: the run the prediction reads) for one
    dispatcher, and over their balanced controls."""
    rows = [r for r in res["rows"] if r["dispatcher"] == d]
    real = [r for r in rows if r["kind"] == "real"]
    bal = [r for r in rows if r["kind"] == "balanced"]

    def m(rs, f):
        return float(np.mean([f(r) for r in rs])) if rs else float("nan")

    return {
        "layer_ms": m(real, lambda r: r["whole_layer"]["median_ms"]),
        "balanced_layer_ms": m(bal, lambda r: r["whole_layer"]["median_ms"]),
        "dispatch_ms": m(real, lambda r: r["dispatch"]["median_ms"]),
        "experts_ms": m(real, lambda r: r["experts"]["median_ms"]),
        "combine_ms": m(real, lambda r: r["combine"]["median_ms"]),
        "MB_per_rank": m(real, lambda r: r["per_rank_bytes"]) / 1e6,
        "recv_skew": m(real, lambda r: r["receiver_skew"]),
        "cases": len(real),
        "checks": sorted({r["check"] for r in rows}),
    }


def predict(res: dict, d: str, pred) -> dict:
    """simulate_ep on exactly the replayed steps and layers of one layer replay, for dispatcher d."""
    from dodoco.compute.features import ExpertShape
    from dodoco.ep.steps import source_of
    from dodoco.errors import DodocoError
    from dodoco.simulate.layer import simulate_ep
    from dodoco.store import find_runs

    timer, model, label = pred
    cfg = res["config"]
    if model is None:
        return {"calibration": label, "why": "no compute model of grouped_mm in this calibration"}
    run = [r for r in find_runs(cfg["runs"]) if r.condition == cfg["condition"]][0]
    layers = list(cfg["layers"]) if cfg.get("layers") is not None else list(range(run.L))
    counts = np.asarray(run.counts)[:, layers, :]
    try:
        rows, skip = simulate_ep(
            counts,
            [res["N"]],
            cfg["batch"],
            timer,
            row_bytes=res["row_bytes"],
            dispatchers=[d],
            compute=(model, ExpertShape(res["layer"]["hidden"], res["layer"]["width"])),
            max_steps=cfg["max_steps"],
            seed=cfg["seed"],
            source=source_of(counts, cfg["seed"]),
        )
    except DodocoError as exc:
        return {"calibration": label, "why": str(exc)}
    if not rows:
        return {"calibration": label, "why": skip[0][1] if skip else "nothing simulated"}
    r = rows[0]
    return {
        "calibration": label,
        **{k: r[k] for k in ("layer_ms", "balanced_layer_ms", "dispatch_ms", "compute_ms", "combine_ms")},
    }


def compare_rows(results: list[dict], preds: dict) -> list[dict]:
    """One row per layer replay and measured dispatcher: measured, and each predictor's prediction and error."""
    out = []
    for res in results:
        for d, st in res["dispatchers"].items():
            if st["status"] != "measured":
                continue
            meas = measured(res, d)
            row = {
                "model": res["source"]["real"]["model"],
                "condition": res["config"]["condition"],
                "batch": res["batch"],
                "N": res["N"],
                "dispatcher": d,
                "kernel": res["layer"]["kernel"],
                "shape": res["layer"]["shape"],
                "measured": meas,
            }
            for name, pred in preds.items():
                p = predict(res, d, pred)
                if p.get("layer_ms") is not None:
                    p["error"] = (p["layer_ms"] - meas["layer_ms"]) / meas["layer_ms"]
                    p["balanced_error"] = (p["balanced_layer_ms"] - meas["balanced_layer_ms"]) / meas[
                        "balanced_layer_ms"
                    ]
                row[name] = p
            out.append(row)
    return out


def targets(rows: list[dict], which: str, band=(16, 512), median: float = 0.05, p90: float = 0.10) -> list[dict]:
    """Per dispatcher: median and p90 |error| of ``which``'s layer prediction over rows whose per-rank MB lie
    in ``band`` (grouped_mm experts), and whether they meet ``median`` and ``p90``."""
    out = []
    for d in sorted({r["dispatcher"] for r in rows}):
        e = [
            abs(r[which]["error"])
            for r in rows
            if r["dispatcher"] == d
            and r["kernel"] == "grouped_mm"
            and r[which].get("error") is not None
            and band[0] <= r["measured"]["MB_per_rank"] <= band[1]
        ]
        med, q = (float(np.median(e)), float(np.quantile(e, 0.9))) if e else (None, None)
        out.append(
            {
                "dispatcher": d,
                "calibration": which,
                "rows": len(e),
                "median_abs_err": med,
                "p90_abs_err": q,
                "met": bool(e) and med <= median and q <= p90,
            }
        )
    return out
