"""Expert-compute replay on this GPU: a run's real per-rank expert loads through real kernels.

For each run and EP degree, ``rank_cases`` picks the busiest, median and lightest rank of each step
and layer (the run's steps, the placement's evaluation policy); each rank's loads and its balanced
control (the same tokens spread evenly over its experts) run through every kernel named
(``dodoco.compute.measure``). Each row carries the roofline floor (FLOPs over the measured peak,
bytes over the measured bandwidth), measured / floor, and the compute model's prediction with whose
calibration it is. A CPU run is a dry run of the path and says so in every row.

Shape legend: G experts of a rank.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["measure_runs"]

COLUMNS = [
    "model",
    "condition",
    "N",
    "B",
    "layer",
    "which",
    "kernel",
    "experts",
    "nonempty",
    "tokens",
    "measured_ms",
    "balanced_ms",
    "vs_balanced",
    "floor_ms",
    "vs_floor",
    "predicted_ms",
    "error",
]


def _models(kernels, device: str) -> dict:
    from dodoco.compute.model import resolve_model

    out = {}
    for k in kernels:
        try:
            out[k] = resolve_model(device, k)
        except DodocoError:
            out[k] = None
    return out


def _rows(cases, shape, kernels, device, peaks, models, measured_on, progress) -> list[dict]:
    from dodoco.compute.cases import balanced_loads
    from dodoco.compute.features import pad_loads, roofline_ms
    from dodoco.compute.measure import measure_loads

    loads = [c.loads for c in cases] + [balanced_loads(c.loads) for c in cases]
    got = measure_loads(shape, loads, kernels, device, progress=progress)
    ms = {(r["index"], r["kernel"]): r for r in got}
    t, valid = pad_loads([c.loads for c in cases])
    floor = roofline_ms(t, valid, shape, peaks["tflops"], peaks["hbm_GBps"])
    rows = []
    for k in kernels:
        pred = models[k].predict_padded(t, valid, shape) if models.get(k) else np.full(len(cases), np.nan)
        for i, c in enumerate(cases):
            m, b = ms[(i, k)]["ms"], ms[(i + len(cases), k)]["ms"]
            rows.append(
                {
                    **c.key(),
                    "kernel": k,
                    "nonempty": int((c.loads > 0).sum()),
                    "measured_ms": m,
                    "p10_ms": ms[(i, k)]["p10_ms"],
                    "p90_ms": ms[(i, k)]["p90_ms"],
                    "balanced_ms": b,
                    "vs_balanced": m / b if b > 0 else float("nan"),
                    "floor_ms": float(floor[i]),
                    "vs_floor": m / float(floor[i]) if floor[i] > 0 else float("nan"),
                    "predicted_ms": float(pred[i]),
                    "error": (float(pred[i]) - m) / m if m > 0 else float("nan"),
                    "shape": shape.label(),
                    "align": ms[(i, k)]["align"],
                    "measured_on": measured_on,
                    "predicted_with": models[k].label(device) if models.get(k) else "no calibration",
                }
            )
    return rows


def measure_runs(cfg):
    """``dodoco compute RUN...``: measure the chosen ranks of every run at every EP degree -> ComputeResult."""
    from dodoco.progress import progress_bar

    from dodoco.compute.result import ComputeResult, config_shape
    from dodoco.compute.cases import rank_cases
    from dodoco.compute.kernels import check_kernels, device_facts, megatron_status
    from dodoco.compute.measure import measure_peaks
    from dodoco.compute.megatron import fused_status
    from dodoco.store import find_runs

    runs = find_runs(list(cfg.runs))
    plan = [
        (
            r,
            N,
            *config_shape(cfg, r),
            rank_cases(
                r,
                N,
                cfg.batch,
                placement=cfg.placement,
                layers=cfg.layers,
                max_steps=cfg.max_steps,
                seed=cfg.seed,
                which=cfg.which,
            ),
        )
        for r in runs
        for N in cfg.ep
    ]  # every case formed (and every mistake named) before the GPU
    facts = _device(cfg.device, device_facts)
    kernels = [k for k in cfg.kernel if k != "megatron"]
    notes = [megatron_status(cfg.device)[1]] if "megatron" in cfg.kernel else []
    dry = facts["device"] == "cpu"
    measured_on = "CPU DRY RUN (not a GPU measurement)" if dry else f"measured on {facts['device']}"
    peaks = measure_peaks(cfg.device)
    models = _models(kernels, facts["device"])
    rows = []
    with progress_bar("compute") as bar:
        task = bar.add_task("", total=2 * sum(len(p[4]) for p in plan))
        for run, N, shape, label, cases in plan:
            ks = kernels + (["megatron"] if "megatron" in cfg.kernel and not fused_status(shape, cfg.device) else [])
            rows += _rows(cases, shape, ks, cfg.device, peaks, models, measured_on, lambda n: bar.advance(task, n))
            notes.append(f"{run.path} EP {N}: shape {label}")
    notes += [
        f"{measured_on}, torch {facts['torch']}; peaks measured here: {peaks['tflops']:.0f} TFLOP/s, "
        f"{peaks['hbm_GBps']:.0f} GB/s",
        f"kernels against a float64 reference: {check_kernels(cfg.device)}",
        "balanced_ms: the same tokens spread evenly over the rank's experts; vs_balanced = measured / balanced",
        "floor_ms: max(FLOPs / measured peak, weights of non-empty experts + tokens in and out / measured bandwidth)",
    ]
    notes += [
        f"{k}: {m.label(facts['device'])}" if m else f"{k}: no calibration ships, no prediction"
        for k, m in models.items()
    ]
    title = ("CPU DRY RUN of " if dry else "") + f"expert compute of real routing, {', '.join(kernels)}"
    return ComputeResult(title, rows, COLUMNS, notes)


def _device(device: str, facts):
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise DodocoError(
            "measuring expert compute needs a CUDA GPU, and none is visible: run it on a GPU machine, "
            "or give --device cpu for a dry run of the path"
        )
    try:
        return facts(device)
    except (RuntimeError, ValueError) as exc:
        raise DodocoError(f"--device {device!r} is not usable here ({exc}): give cuda, cuda:N or cpu") from None
