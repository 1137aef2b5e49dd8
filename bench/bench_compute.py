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
model (``bench/compute_fits.py``). Writes compute-<gpu>.json.gz (every measurement, the fits, the error tables, notes from this
run) and compute-<gpu>-<kernel>.json (the calibrations DODOCO ships).

    python bench/bench_compute.py --runs .carry/compute-runs --out $OUT          # on the GPU
    python bench/bench_compute.py --refit bench/results/compute-h100.json.gz     # fits again, CPU (results kept gzipped)
        [--other bench/results/compute-h100-repeat.json.gz ...]  # repeat calls (kept gzipped)
    python bench/bench_compute.py --refit NEW.json --sets routing   # the shipped calibration on NEW's routing

The routing runs (7.3 MB, not committed; every H100 call timed these same loads) come from the zoo
on the bundled prose, on CPU in about a minute:

    for f in deepseek_v2 deepseek_moe qwen3_moe nemotron_h qwen3_5_moe; do for s in 16 64 256; do
      dodoco observe --model zoo:$f --conditions prose --seq-len $s --sequences 256 -o .carry/compute-runs/$f-$s
    done; done

A later call validates on routing no earlier call timed (the same models on the bundled code and math
texts, 15 MB, about 13 minutes on two cores), with Nemotron's ranks at its own ReLU^2 experts:

    for c in code math; do for f in deepseek_v2 deepseek_moe qwen3_moe nemotron_h qwen3_5_moe; do
      for s in 16 64 256; do
        dodoco observe --model zoo:$f --conditions $c --seq-len $s --sequences 256 -o .carry/compute-fresh/$c-$f-$s
    done; done; done
    python bench/bench_compute.py --runs .carry/compute-fresh --sets grid,routing --out $OUT
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from compute_fits import (  # noqa: E402
    GRID_SHAPES,
    KERNELS,
    figure_of,
    fit_all,
    notes_of,
    other_of,
    read_result,
    write_gz_result,
)
from compute_check import check_figure, others_figure, shipped_notes, shipped_on_routing  # noqa: E402
from compute_relu2 import relu2_notes, relu2_of  # noqa: E402

EP = (4, 8, 16, 32, 64)
SETS = ("grid", "routing", "relu2")
#: sequence length -> batches: with K=8, 128, 512, 2048 and 8192 tokens per rank on average
BATCH = {16: (1, 4), 64: (4,), 256: (4,)}
#: extra pairing: the zoo's E=256, K=8 router (as DeepSeek-V3's E and K) at DeepSeek-V3's expert shape
EXTRA = (("qwen3_5_moe", "deepseek-v3"),)


FAILURES: list[str] = []
SCALE = 1  # --scale: expert shapes divided by this (a CPU dry run of the whole path; never shipped)


def _dims(shape) -> dict:
    """H and I divided by --scale, kept multiples of 8 (grouped_mm wants 16-byte strides), and the activation."""
    return {
        "hidden": max(16, shape.hidden // SCALE // 8 * 8),
        "width": max(16, shape.width // SCALE // 8 * 8),
        "act": shape.act,
    }


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


def _relu2_cases(routing: list[dict]) -> list[dict]:
    """Nemotron's routing at Nemotron-30B's own experts, ungated ReLU^2, each rank beside its SwiGLU twin
    of the same H and I (how the "routing" set, and every call before, timed them): the fits' transfer
    to another activation, what the activation changes, and Megatron-Core's fused MoE beside both
    kernels. Validation only."""
    return [
        {**c, "set": "relu2", "act": act}
        for c in routing
        if c["shape_name"] == "nemotron-30b" and c["control"] == "routing"
        for act in ("relu2", "swiglu")
    ]


def _measure(cases: list[dict], device: str, deadline: float) -> list[dict]:
    """Time every case through both kernels (ReLU^2 cases through Megatron's fused MoE too, where it runs),
    one ExpertBench per shape, in a seeded shuffled order (so a run stopped at the deadline keeps an even
    sample of every shape and set)."""
    from dodoco.compute.kernels import ExpertBench
    from dodoco.compute.megatron import fused_status
    from dodoco.progress import progress_bar

    order = np.random.default_rng(0).permutation(len(cases))
    width = {}
    for c in cases:
        key = _key(c)
        width[key] = max(width.get(key, 1), len(c["loads"]))
    benches, rows = {}, []
    with progress_bar("{task.description}") as bar:
        task = bar.add_task("expert compute", total=len(cases))
        for i in range(0, len(order), 48):
            if time.time() > deadline:
                break
            chunk = [cases[j] for j in order[i : i + 48]]
            for key in sorted({_key(c) for c in chunk}):
                part = [c for c in chunk if _key(c) == key]
                bench = benches.get(key) or benches.setdefault(key, ExpertBench(_shape(key), width[key], device))
                rows += _measure_part(part, bench, KERNELS, device, lambda n: bar.advance(task, n), i)
                if key[2] == "relu2" and not fused_status(bench.shape, device):
                    rows += _measure_part(part, bench, ("megatron",), device, None, i)
    benches.clear()
    _empty_cache(device)
    return rows


def _measure_part(part: list[dict], bench, kernels, device: str, progress, chunk: int) -> list[dict]:
    """One shape's cases of a chunk through ``kernels`` -> rows (case fields and timings); a failure is
    recorded and loses only these kernels' rows of the chunk."""
    from dodoco.compute.measure import measure_loads

    loads = [c["loads"] for c in part]
    try:
        got = measure_loads(bench.shape, loads, kernels, device, bench=bench, progress=progress, target_ms=20.0)
    except Exception as exc:  # noqa: BLE001 - record and go on: one bad chunk must not lose the run
        FAILURES.append(f"{bench.shape.label()} {'/'.join(kernels)} chunk {chunk}: {type(exc).__name__}: {exc}"[:300])
        if progress is not None:
            progress(len(part))
        return []
    return [{**part[r["index"]], **{k: v for k, v in r.items() if k != "index"}} for r in got]


def _shape(key: tuple):
    from dodoco.compute.features import ExpertShape

    return ExpertShape(*key[:2], act=key[2])


def _key(case: dict) -> tuple:
    return (case["hidden"], case["width"], case.get("act", "swiglu"))


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
    from dodoco.store.atomic import json_safe, write_bytes, write_json

    res = fit_all(raw)
    raw.update(res)
    raw["relu2"] = relu2_of(raw, res["fits"])
    raw["notes"] = notes_of(raw, res) + relu2_notes(raw["relu2"])
    gpu = gpu_key(raw["facts"]["device"])
    out.mkdir(parents=True, exist_ok=True)
    if not res["fits"]:  # no grid measured: checks of the shipped calibration alone, never a calibration
        raw["shipped_check"] = shipped_on_routing(raw)
        raw["notes"] += shipped_notes(raw["shipped_check"])
        name = "relu2" if not raw["shipped_check"] else "check"
        write_gz_result(out / f"compute-{gpu}-{name}.json.gz", raw)
        if raw["shipped_check"]:
            write_bytes(out / f"compute-{gpu}-check.png", check_figure(raw))
        print(*raw["notes"], sep="\n")
        return
    write_gz_result(out / f"compute-{gpu}.json.gz", raw)
    head = raw["notes"][: 1 + next(i for i, n in enumerate(raw["notes"]) if n.startswith("peaks"))]
    for kernel, fit in res["fits"].items():
        write_json(out / f"compute-{gpu}-{kernel}.json", json_safe({**fit, "notes": head}))
    if any(len(e) for errs in res["tables_err"].values() for e in errs.values()):
        write_bytes(out / f"compute-{gpu}.png", figure_of(raw))
    elif raw.get("other"):  # a grid-only call: its fits drawn on the other calls' routing
        write_bytes(out / f"compute-{gpu}.png", others_figure(raw))
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
    routing = _routing_cases(Path(args.runs)) if args.runs else []
    cases = [c for c in _grid_cases() + routing + _relu2_cases(routing) if c["set"] in args.sets]
    raw["rows"] = _measure(cases, args.device, deadline)
    done = sum(1 for r in raw["rows"] if r["kernel"] == "grouped_mm")
    if done < len(cases):
        raw["truncated"] = f"{done} of {len(cases)} ranks measured"
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
    p.add_argument("--refit", help="a compute-<gpu>.json[.gz] of an earlier run: fit and check again, no GPU")
    p.add_argument("--scale", type=int, default=1, help="divide expert shapes by this (CPU dry run only)")
    p.add_argument(
        "--sets",
        type=lambda v: tuple(v.split(",")),
        default=SETS,
        help="what to measure (comma list of grid, routing, relu2; default all): relu2 alone checks a GPU's "
        "shipped calibration on ReLU^2 experts and Megatron's fused MoE, and writes compute-<gpu>-relu2.json.gz; "
        "with --refit, keeps only these sets' rows (without grid: the shipped calibration scored on the routing)",
    )
    p.add_argument(
        "--other",
        nargs="+",
        help="with --refit: other runs (repeat calls on the same GPU kind, or another GPU's) whose real routing "
        "this run's fits also predict (reproducibility across device calls, and what another GPU's fit misses)",
    )
    args = p.parse_args(argv)
    if bad := [x for x in args.sets if x not in SETS]:
        p.error(f"--sets {','.join(args.sets)}: {', '.join(bad)} is not a set; give a comma list of {', '.join(SETS)}")
    global SCALE
    SCALE = args.scale
    if args.refit:
        from dodoco.provenance import versions

        raw = read_result(Path(args.refit))
        for k in (
            "fits",
            "tables",
            "notes",
            "other",
            "tables_err",
            "balanced_controls",
            "routing_vs_even",
            "relu2",
            "forms_on_routing",
            "shipped_check",
        ):
            raw.pop(k, None)
        raw["refit"] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat()[:10], "git": versions()["git"]}
        if args.sets != SETS:  # keep only these sets' rows: --sets routing scores the shipped calibration blind
            raw["rows"] = [r for r in raw["rows"] if r["set"] in args.sets]
            raw["refit"]["sets"] = list(args.sets)
    else:
        raw = _measure_all(args)
    if args.other:
        raw["other"] = [other_of(raw, Path(o)) for o in args.other]
    _write(raw, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
