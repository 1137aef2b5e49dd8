"""Expert compute on this GPU: the calibration grid, held-out real routing, the compute model per kernel.

One device call per GPU kind measures everything (docs/compute.md):

1. the device's two ceilings (bf16 matmul, copy bandwidth) and both kernels against a float64
   reference on a small case of uneven groups;
2. the calibration grid (``dodoco.compute.grid``) at the four paper shapes through ``grouped_mm``
   and ``loop``;
3. real routing never used for calibration: the busiest, median and lightest rank of steps of the
   zoo's learned routers on real text (``dodoco.compute.cases.rank_cases``, EP 4 to 64, 128 to
   8192 tokens per rank), each at its real model's expert shape, and each rank's balanced control;
4. the replay's own overhead: the kernel timed through ``measure_loads`` and called directly.

Then, on any machine: each kernel's model is calibrated on the grid alone (form chosen by held-out
error, ``dodoco.compute.model.calibrate``) and checked on the real routing, beside the tokens-only
model. Writes compute-<gpu>.json (every measurement, the fits, the error tables, notes from this
run) and compute-<gpu>-<kernel>.json (the calibrations DODOCO ships).

    python bench/bench_compute.py --runs .carry/compute-runs --out $OUT          # on the GPU
    python bench/bench_compute.py --refit bench/results/compute-h100.json        # fits again, CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

GRID_SHAPES = ("deepseek-v3", "deepseek-v2-lite", "qwen3-30b-a3b", "qwen3.5-35b-a3b")
KERNELS = ("grouped_mm", "loop")
EP = (4, 8, 16, 32, 64)
#: sequence length -> batches: with K=8, 128, 512, 2048 and 8192 tokens per rank on average
BATCH = {16: (1, 4), 64: (4,), 256: (4,)}
#: extra pairing: the zoo's E=256, K=8 router (as DeepSeek-V3's E and K) at DeepSeek-V3's expert shape
EXTRA = (("qwen3_5_moe", "deepseek-v3"),)


FAILURES: list[str] = []
SCALE = 1  # --scale: expert shapes divided by this (a CPU dry run of the whole path; never shipped)


def _dims(shape) -> dict:
    return {"hidden": max(16, shape.hidden // SCALE), "width": max(16, shape.width // SCALE)}


def _grid_cases():
    from dodoco.compute.grid import calibration_grid
    from dodoco.compute.shapes import SHAPES

    return [
        {"set": "grid", "family": fam, "shape_name": name, **_dims(SHAPES[name][0]), "loads": loads.tolist()}
        for name in GRID_SHAPES
        for fam, loads in calibration_grid(max_tokens=65536 // SCALE)
    ]


def _routing_cases(runs_dir: Path) -> list[dict]:
    from dodoco.compute.cases import balanced_loads, rank_cases
    from dodoco.compute.shapes import SHAPES, shape_of_run
    from dodoco.store import find_runs

    out = []
    for run in find_runs([str(runs_dir)]):
        family = run.model.split(":")[-1]
        own = shape_of_run(run)[0]
        names = [n for n, (s, _) in SHAPES.items() if s == own][:1] + [s for f, s in EXTRA if f == family]
        for N in EP:
            for B in BATCH.get(run.seq_len, (1,)):
                if N > run.E or N * B > run.S:
                    continue
                for c in rank_cases(run, N, B, layers=(0, run.L - 1), max_steps=1):
                    for name in names:
                        base = {
                            **c.key(),
                            "family": family,
                            "seq_len": run.seq_len,
                            "shape_name": name,
                            **_dims(SHAPES[name][0]),
                        }
                        out.append({**base, "set": "routing", "control": "routing", "loads": c.loads.tolist()})
                        out.append(
                            {**base, "set": "routing", "control": "balanced", "loads": balanced_loads(c.loads).tolist()}
                        )
    return out


def _measure(cases: list[dict], device: str, deadline: float) -> list[dict]:
    """Time every case through both kernels, one ExpertBench per shape, in a seeded shuffled order (so a
    run stopped at the deadline keeps an even sample of every shape and set)."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.kernels import ExpertBench
    from dodoco.compute.measure import measure_loads
    from dodoco.progress import progress_bar

    order = np.random.default_rng(0).permutation(len(cases))
    width = {}
    for c in cases:
        key = (c["hidden"], c["width"])
        width[key] = max(width.get(key, 1), len(c["loads"]))
    benches, rows = {}, []
    with progress_bar("{task.description}") as bar:
        task = bar.add_task("expert compute", total=len(cases))
        for i in range(0, len(order), 48):
            if time.time() > deadline:
                break
            chunk = [cases[j] for j in order[i : i + 48]]
            for key in sorted({(c["hidden"], c["width"]) for c in chunk}):
                part = [c for c in chunk if (c["hidden"], c["width"]) == key]
                shape = ExpertShape(*key)
                try:
                    bench = benches.setdefault(key, ExpertBench(shape, width[key], device))
                    got = measure_loads(
                        shape,
                        [c["loads"] for c in part],
                        KERNELS,
                        device,
                        bench=bench,
                        progress=lambda n: bar.advance(task, n),
                        target_ms=20.0,
                    )
                except Exception as exc:  # noqa: BLE001 - record and go on: one bad chunk must not lose the run
                    FAILURES.append(f"H={key[0]} I={key[1]} chunk {i}: {type(exc).__name__}: {exc}"[:300])
                    continue
                rows += [{**part[r["index"]], **{k: v for k, v in r.items() if k != "index"}} for r in got]
    benches.clear()
    _empty_cache(device)
    return rows


def _empty_cache(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _overhead(device: str, reps: int = 30) -> list[dict]:
    """A kernel timed through the replay (measure_loads) and called directly with CUDA events, side by side
    (both with the host's head start of a sleep kernel before each call)."""
    import torch

    from dodoco.compute.features import ExpertShape
    from dodoco.compute.kernels import ExpertBench
    from dodoco.compute.measure import measure_loads

    out = []
    for h, w, loads in ((2048, 768, [300, 0, 17, 900, 64, 5, 230, 41]), (7168, 2048, [1500, 220, 0, 3100])):
        shape = ExpertShape(h, w)
        bench = ExpertBench(shape, len(loads), device)
        for _ in range(3):
            via = measure_loads(shape, [loads], ("grouped_mm",), device, bench=bench, min_reps=reps, max_reps=reps)
            x, offs, _host = bench.inputs(loads)
            ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
            for k in range(3):
                bench.grouped_mm(x, offs, k)
            torch.cuda.synchronize()
            for k, (a, b) in enumerate(ev):
                torch.cuda._sleep(1_000_000)  # 0.5 ms at 2 GHz: the host enqueues the call while the GPU sleeps
                a.record()
                bench.grouped_mm(x, offs, k)
                b.record()
            torch.cuda.synchronize()
            direct = float(np.median([a.elapsed_time(b) for a, b in ev]))
            out.append(
                {
                    "hidden": h,
                    "width": w,
                    "loads": loads,
                    "replay_ms": via[0]["ms"],
                    "direct_ms": direct,
                    "ratio": via[0]["ms"] / direct,
                }
            )
        del bench
    return out


def _fit(raw: dict) -> dict:
    """Calibrate each kernel on the grid alone, check it on the real routing, beside the tokens-only model."""
    import dataclasses

    from dodoco.compute.features import ExpertShape, features_many, pad_loads
    from dodoco.compute.fit import FORMS, fit_form
    from dodoco.compute.model import calibrate
    from dodoco.compute.holdout import error_table, held_out, routing_vs_even, summary

    fits, tables, errors_of, controls, evens = {}, {}, {}, {}, {}
    info = {k: raw["facts"].get(k) for k in ("torch", "cuda")}
    info.update(
        date=raw["date"][:10],
        dodoco=raw["versions"].get("dodoco"),
        git=raw["versions"].get("git"),
        peaks=raw.get("peaks"),
        grid="dodoco.compute.grid.calibration_grid() at " + ", ".join(GRID_SHAPES),
    )
    for kernel in KERNELS:
        grid = [r for r in raw["rows"] if r["set"] == "grid" and r["kernel"] == kernel and r["ms"] > 0]
        real = _routing_rows(raw, kernel, "routing")
        if len(grid) < 20:
            continue
        shapes = [ExpertShape(r["hidden"], r["width"]) for r in grid]
        model = calibrate(
            [r["loads"] for r in grid],
            shapes,
            [r["ms"] for r in grid],
            kernel=kernel,
            device=raw["facts"]["device"],
            sms=raw["facts"]["sms"],
            info=info,
        )
        t, v = pad_loads([r["loads"] for r in grid])
        tok = fit_form(FORMS["tokens"], features_many(t, v, shapes), [r["ms"] for r in grid])
        tokens_only = dataclasses.replace(model, form="tokens", coef=tok, info={})
        errs = (
            {
                f"dodoco ({model.form}, tile {model.tile_m})": held_out(model, real),
                "tokens only (grid-fitted)": held_out(tokens_only, real),
                "equal-groups table (the old model)": _old_table(grid, real),
            }
            if real
            else {}
        )
        for name, e in errs.items():
            for r, x in zip(real, e):
                r.setdefault("errors", {})[name] = float(x)
        balanced = _routing_rows(raw, kernel, "balanced")
        if balanced:
            controls[kernel] = summary(held_out(model, [r for r in balanced if _in_target(r)]))
            evens[kernel] = routing_vs_even(_busiest_pairs(real, balanced))
        fits[kernel] = model.to_dict()
        tables[kernel] = error_table(real, errs) if real else []
        target = [i for i, r in enumerate(real) if _in_target(r)]
        errors_of[kernel] = {name: [float(e[i]) for i in target] for name, e in errs.items()}
    return {
        "fits": fits,
        "tables": tables,
        "tables_err": errors_of,
        "balanced_controls": controls,
        "routing_vs_even": evens,
    }


def _busiest_pairs(real: list[dict], balanced: list[dict]) -> list[tuple]:
    """(busiest rank of real routing, its balanced control) measured in the same call, matched on every key."""
    skip = {"control", "loads", "ms", "p10_ms", "p90_ms", "reps", "errors", "shape"}
    key = lambda r: tuple(sorted((k, str(v)) for k, v in r.items() if k not in skip))  # noqa: E731
    ctl = {key(r): r for r in balanced}
    return [(r, ctl[key(r)]) for r in real if r["which"] == "busiest" and key(r) in ctl]


def _in_target(r: dict) -> bool:
    return 128 <= r["tokens"] <= 8192 and 4 <= r.get("N", 0) <= 64


def _routing_rows(raw: dict, kernel: str, control: str) -> list[dict]:
    """The measured ranks of real routing (control "routing") or their balanced controls ("balanced")."""
    from dodoco.compute.features import ExpertShape

    return [
        {**r, "shape": ExpertShape(r["hidden"], r["width"])}
        for r in raw["rows"]
        if r["set"] == "routing" and r.get("control") == control and r["kernel"] == kernel and r["ms"] > 0
    ]


def _old_table(grid: list[dict], real: list[dict]) -> np.ndarray:
    """DODOCO's old expert model on the same measurements: per shape, the grid's 16 equal groups of t
    tokens as a table of ms per expert, interpolated in t and summed over a rank's experts."""
    out = np.full(len(real), np.nan)
    for i, r in enumerate(real):
        eq = sorted(
            (x["loads"][0], x["ms"] / 16)
            for x in grid
            if x["family"] == "equal"
            and len(x["loads"]) == 16
            and (x["hidden"], x["width"]) == (r["hidden"], r["width"])
        )
        if len(eq) < 2:
            continue
        t, ms = np.array([0.0] + [a for a, _ in eq]), np.array([0.0] + [b for _, b in eq])
        loads = np.asarray(r["loads"], dtype=np.float64)
        per = np.where(loads > 0, np.interp(loads, t, ms), 0.0)
        out[i] = (per.sum() - r["ms"]) / r["ms"]
    return out


def _notes(raw: dict, res: dict) -> list[str]:
    f = raw["facts"]
    notes = [
        f"measured on {f['device']} ({f['sms']} SMs, torch {f['torch']}, CUDA {f.get('cuda')}) on "
        f"{raw['date'][:10]} by bench/bench_compute.py in {raw.get('seconds', 0):.0f} s",
        f"peaks measured here: {raw['peaks']['tflops']:.0f} TFLOP/s bf16, {raw['peaks']['hbm_GBps']:.0f} GB/s copy",
        f"kernels against a float64 reference: {raw['check']}",
        raw["megatron"],
    ]
    n = {s: sum(1 for r in raw["rows"] if r["set"] == s) for s in ("grid", "routing")}
    notes.append(
        f"{n['grid']} grid timings (calibration) and {n['routing']} real-routing timings (validation only: "
        "zoo routers on prose, busiest/median/lightest rank and each one's balanced control)"
    )
    for kernel, t in res["tables"].items():
        for row in t[:3]:
            if row["n"]:
                notes.append(
                    f"{kernel}, {row['model']}, {row['group']}: median {100 * row['median_abs_err']:.1f}%, "
                    f"p90 {100 * row['p90_abs_err']:.1f}% over {row['n']} ranks"
                )
    for kernel, c in res.get("balanced_controls", {}).items():
        if c["n"]:
            notes.append(
                f"{kernel}, balanced controls (each target rank's tokens spread evenly, not routing): median "
                f"{100 * c['median_abs_err']:.1f}%, p90 {100 * c['p90_abs_err']:.1f}% over {c['n']} ranks"
            )
    for kernel, bands in res.get("routing_vs_even", {}).items():
        a = bands[0]
        if a["n"]:
            notes.append(
                f"{kernel}, measured: the busiest rank of real routing ran faster than its own tokens spread evenly "
                f"over its experts in {a['faster']} of {a['n']} ranks (down to {a['min_ratio']:.2f}x); by band: "
                + ", ".join(f"{b['band']} {b['faster']}/{b['n']}" for b in bands[1:] if b["n"])
            )
    if raw.get("overhead"):
        notes.append(
            "replay overhead (measure_loads / direct call, median ratio): "
            f"{np.median([o['ratio'] for o in raw['overhead']]):.4f}"
        )
    notes += [f"failed: {f}" for f in raw.get("failures", [])]
    if raw.get("refit"):
        notes.append(
            f"forms fitted again on {raw['refit']['date']} from these measurements (bench_compute.py --refit, "
            f"git {str(raw['refit']['git'])[:10]})"
        )
    if raw.get("other"):
        o = raw["other"]
        notes += [
            f"{k} fits of this run on the real routing of {o['file']} ({o['device']}, {o['date'][:10]}): median "
            f"{100 * o[k]['median_abs_err']:.1f}%, p90 {100 * o[k]['p90_abs_err']:.1f}% over {o[k]['n']} ranks"
            for k in KERNELS
            if k in o
        ]
    if raw.get("truncated"):
        notes.append("the time budget ran out: " + raw["truncated"])
    return notes


def _figure(raw: dict) -> bytes:
    """Per kernel: measured vs predicted on the real routing (the model fitted on the grid alone), and the
    cumulative share of ranks within each absolute error, dodoco's model beside the two baselines."""
    from dodoco.compute.model import ComputeModel
    from dodoco.compute.holdout import held_out
    from dodoco.report.plots import grid, png
    from dodoco.report.style import legend, suptitle

    fig, axes = grid(2 * len(raw["fits"]), 3.6, 3.2, ncols=2)
    for k, (kernel, fit) in enumerate(raw["fits"].items()):
        real = [r for r in _routing_rows(raw, kernel, "routing") if _in_target(r)]
        model = ComputeModel.from_dict(fit)
        ms = np.array([r["ms"] for r in real])
        pred = ms * (1 + held_out(model, real))
        ax = axes[2 * k]
        ax.loglog(ms, pred, ".", markersize=2, color="#4477aa", alpha=0.5)
        lim = [ms.min() * 0.8, ms.max() * 1.2]
        ax.plot(lim, lim, color="black", linewidth=0.8)
        ax.fill_between(lim, [x * 0.9 for x in lim], [x * 1.1 for x in lim], color="0.85", zorder=0)
        ax.set(title=f"{kernel}: {model.form}, tile {model.tile_m}", xlabel="measured (ms)", ylabel="predicted (ms)")
        ax = axes[2 * k + 1]
        for name, err in raw["tables_err"][kernel].items():
            e = np.sort(np.abs(np.asarray(err, dtype=float)[np.isfinite(err)]))
            ax.plot(100 * e, np.arange(1, e.size + 1) / e.size, label=name)
        ax.axvline(10, color="0.6", linewidth=0.8)
        ax.set(
            xscale="log",
            xlim=(0.1, 200),
            title=f"{kernel}: held-out error",
            xlabel="absolute error (%)",
            ylabel="share of ranks",
        )
    suptitle(
        fig,
        f"Expert compute on {raw['facts']['device']}: real routing never used for calibration "
        "(128-8192 tokens per rank, EP 4-64); grey band and line: 10%",
    )
    legend(
        fig, [(n, {"color": c}) for n, c in zip(raw["tables_err"][next(iter(raw["tables_err"]))], ("C0", "C1", "C2"))]
    )
    return png(fig)


def _print(res: dict, raw: dict) -> None:
    print(f"\n{raw['facts']['device']}: held-out error on real routing (never in the calibration grid)")
    print(f"{'kernel':<11} {'model':<34} {'group':<40} {'n':>5} {'median':>7} {'p90':>7}")
    for kernel, t in res["tables"].items():
        for row in t:
            if row["n"] and (row["group"].startswith(("target", "tokens/rank", "EP"))):
                print(
                    f"{kernel:<11} {row['model'][:34]:<34} {row['group'][:40]:<40} {row['n']:>5} "
                    f"{100 * row['median_abs_err']:>6.1f}% {100 * row['p90_abs_err']:>6.1f}%"
                )


def _write(raw: dict, out: Path) -> None:
    from dodoco.host import gpu_key
    from dodoco.store.atomic import json_safe, write_json

    res = _fit(raw)
    raw.update(res)
    raw["notes"] = _notes(raw, res)
    gpu = gpu_key(raw["facts"]["device"])
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"compute-{gpu}.json", json_safe(raw))
    for kernel, fit in res["fits"].items():
        write_json(out / f"compute-{gpu}-{kernel}.json", json_safe({**fit, "notes": raw["notes"][:2]}))
    if res["fits"] and any(len(e) for errs in res["tables_err"].values() for e in errs.values()):
        from dodoco.store.atomic import write_bytes

        write_bytes(out / f"compute-{gpu}.png", _figure(raw))
    _print(res, raw)


def _measure_all(args) -> dict:
    from dodoco.compute.kernels import check_kernels, device_facts, megatron_status
    from dodoco.compute.measure import measure_peaks
    from dodoco.provenance import versions

    t0 = time.time()
    deadline = t0 + args.budget_s
    raw = {
        "schema": "dodoco.bench.compute/1",
        "scale": SCALE,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "facts": device_facts(args.device),
        "versions": versions(),
        "peaks": measure_peaks(args.device),
        "check": check_kernels(args.device),
        "megatron": megatron_status()[1],
    }
    print(raw["facts"], raw["peaks"], raw["check"], raw["megatron"], sep="\n", flush=True)
    cases = _grid_cases() + (_routing_cases(Path(args.runs)) if args.runs else [])
    raw["rows"] = _measure(cases, args.device, deadline)
    if len(raw["rows"]) < 2 * len(cases):
        raw["truncated"] = f"{len(raw['rows'])} of {2 * len(cases)} timings made"
    raw["overhead"] = _overhead(args.device) if args.device.startswith("cuda") and time.time() < deadline else []
    raw["failures"] = FAILURES
    raw["seconds"] = time.time() - t0
    return raw


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", help="folder of run directories whose routing validates the model")
    p.add_argument("--out", default=str(ROOT / "bench/results"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=float, default=480.0, help="stop measuring after this many seconds")
    p.add_argument("--refit", help="a compute-<gpu>.json of an earlier run: fit and check again, no GPU")
    p.add_argument("--scale", type=int, default=1, help="divide expert shapes by this (CPU dry run only)")
    p.add_argument(
        "--other",
        help="with --refit: a repeat run on the same GPU whose real routing this run's fits "
        "also predict (reproducibility across device calls)",
    )
    args = p.parse_args(argv)
    global SCALE
    SCALE = args.scale
    if args.refit:
        from dodoco.provenance import versions

        raw = json.loads(Path(args.refit).read_text())
        for k in ("fits", "tables", "notes", "other", "tables_err", "balanced_controls", "routing_vs_even"):
            raw.pop(k, None)
        raw["refit"] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat()[:10], "git": versions()["git"]}
    else:
        raw = _measure_all(args)
    if args.other:
        raw["other"] = _other(raw, Path(args.other))
    _write(raw, Path(args.out))
    return 0


def _other(raw: dict, path: Path) -> dict:
    """This run's fits (made here) on another run's real routing, same GPU: one summary per kernel."""
    from dodoco.compute.model import ComputeModel
    from dodoco.compute.holdout import held_out, summary

    other = json.loads(path.read_text())
    fits = _fit(raw)["fits"]
    out = {"file": path.name, "date": other["date"], "device": other["facts"]["device"]}
    for kernel, fit in fits.items():
        rows = [r for r in _routing_rows(other, kernel, "routing") if _in_target(r)]
        out[kernel] = summary(held_out(ComputeModel.from_dict(fit), rows))
    return out


if __name__ == "__main__":
    sys.exit(main())
