"""The expert-compute part of ``dodoco calibrate``: the compute grid on GPU 0, fitted per kernel.

As ``bench/bench_compute.py`` measures it: the device's two ceilings and the kernels against a
float64 reference (part ``compute-device``); ``dodoco.compute.grid.calibration_grid`` at each of the
paper's routed-expert shapes through each kernel (``compute.measure.measure_loads``, one part per
shape); then ``compute.model.calibrate`` per kernel on all of them (the form and tile chosen by
held-out error). The dispatch torchruns have ended when this runs, so GPU 0 is idle. A dry run uses
the shapes divided by 64 (rounded to multiples of 8) and a small grid, on the CPU.

Shape legend: G experts of a rank, H hidden size, I expert width.
"""

from __future__ import annotations

__all__ = ["compute_shape", "device_part", "fit_compute", "grid_of", "measure_part"]


def compute_shape(cfg, name: str):
    """The ExpertShape measured for a named shape (the dry run's toy version of it)."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.shapes import SHAPES

    s, k = SHAPES[name][0], cfg.dry("shape_scale")
    if k == 1:
        return s
    return ExpertShape(max(16, s.hidden // k // 8 * 8), max(16, s.width // k // 8 * 8))


def grid_of(cfg) -> list:
    """The compute calibration grid of these settings: [(family, loads int64 [G])]."""
    from dodoco.compute.grid import calibration_grid

    return calibration_grid(max_tokens=cfg.dry("max_tokens"), random_cases=cfg.dry("random_cases"))


def device_part(cfg) -> dict:
    """The device's facts, its measured ceilings and the kernels' check against float64."""
    from dodoco.compute.kernels import check_kernels, device_facts
    from dodoco.compute.measure import measure_peaks

    device = "cpu" if cfg.dry_run else cfg.device
    return {"facts": device_facts(device), "peaks": measure_peaks(device), "check": check_kernels(device)}


def measure_part(cfg, name: str, progress=None) -> dict:
    """Every grid case of one shape through every kernel -> the part: the shape and one row per (case, kernel)."""
    from dodoco.compute.measure import measure_loads

    shape = compute_shape(cfg, name)
    grid = grid_of(cfg)
    device = "cpu" if cfg.dry_run else cfg.device
    timing = {"warmup": 1, "min_reps": 2, "max_reps": 3, "target_ms": 1.0} if cfg.dry_run else {"target_ms": 20.0}
    got = measure_loads(shape, [loads for _, loads in grid], tuple(cfg.kernel), device, progress=progress, **timing)
    rows = [
        {
            "family": grid[r["index"]][0],
            "loads": grid[r["index"]][1].tolist(),
            **{k: v for k, v in r.items() if k != "index"},
        }
        for r in got
    ]
    return {"shape_name": name, "hidden": shape.hidden, "width": shape.width, "rows": rows}


def fit_compute(parts: list[dict], device: dict, kernels, host: dict) -> tuple[dict, list[str]]:
    """({kernel: ComputeModel dict}, notes) fitted on the measured shapes' grid rows of each kernel."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.model import calibrate

    facts = device["facts"]
    info = {
        "torch": facts.get("torch"),
        "cuda": facts.get("cuda"),
        "date": (host.get("date") or "")[:10],
        "dodoco": host.get("dodoco"),
        "git": host.get("git"),
        "peaks": device.get("peaks"),
        "host": host.get("machine"),
        "grid": "dodoco.compute.grid.calibration_grid() at " + ", ".join(p["shape_name"] for p in parts),
        "measured_by": "dodoco calibrate",
    }
    out, notes = {}, []
    for kernel in kernels:
        rows = [(p, r) for p in parts for r in p["rows"] if r["kernel"] == kernel and r["ms"] > 0]
        if len(rows) < 20:
            notes.append(f"compute {kernel}: {len(rows)} timed cases, too few to fit (20 needed)")
            continue
        model = calibrate(
            [r["loads"] for _, r in rows],
            [ExpertShape(p["hidden"], p["width"]) for p, _ in rows],
            [r["ms"] for _, r in rows],
            kernel=kernel,
            device=facts["device"],
            sms=facts["sms"],
            info=info,
        )
        out[kernel] = model.to_dict()
        h = model.info["held_out"]
        notes.append(
            f"compute {kernel} on {facts['device']}: form {model.form}, tile {model.tile_m}, held-out "
            f"error median {100 * h['median_abs_err']:.1f}%, p90 {100 * h['p90_abs_err']:.1f}% over "
            f"{len(rows)} grid cases"
        )
    return out, notes
