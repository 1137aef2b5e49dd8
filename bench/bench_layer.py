"""Whole MoE layer on this machine's GPUs: `dodoco calibrate`, then the layer replayed on held-out routing.

One device call per machine kind (docs/replay.md, "Whole-layer replay"):

1. ``dodoco calibrate`` on the N GPUs here (``dodoco.calibrate.api``): the dispatch grid through every
   dispatcher that runs, the expert-compute grid on GPU 0, one calibration file with the host identity;
2. the whole-layer replay (``dodoco replay --layer``, one torchrun for all cases) on routing never used
   for calibration: the zoo's learned routers on prose, code and mock-uniform (``bench/data/dispatch``:
   ``zoo:qwen3_5_moe`` (E = 256, K = 8) at DeepSeek-V3's expert shape, H = 7168, I = 2048, and
   ``zoo:qwen3_moe`` (E = 128, K = 8) at Qwen3-30B-A3B's, H = 2048, I = 768), batches B chosen for 16 to
   512 MB per rank, each case beside its balanced control; where megatron-core imports, Megatron-Core's
   own experts (SequentialMLP) behind its MoEAlltoAllTokenDispatcher on the same cases (the reference);
3. per replay and dispatcher, ``dodoco simulate``'s whole-layer prediction (``simulate.layer.simulate_ep``
   with compute = the model of step 1) from the same-machine calibration, and separately from the shipped
   preset (dgx-h200's dispatch fits; the shipped compute model of the GPU where one ships, else this
   machine's, said so), both on exactly the replayed steps and layers.

Writes ``layer-<machine>.json`` (the rows, per-dispatcher targets: median |error| <= 5%, p90 <= 10% over
16 to 512 MB per rank; the preset's error printed beside; the calibration's time) and
``calibration-<machine>.json`` under --out, and prints a short table last.

    python3 bench/bench_layer.py --machine nvidia-h200-x4 --out $OUT                 # GPUs (about 7 minutes on 4)
    python3 bench/bench_layer.py --machine nvidia-h200-x4 --out $OUT --quick         # prose, two batches per model
    python3 bench/bench_layer.py --backend gloo --dry-run --out /tmp/bl             # CPU dry run of the path
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: routing (zoo runs, held out: never in any calibration grid) -> (expert shape, batches B per size band)
MODELS = {"qwen3_5_moe": ("deepseek-v3", (1, 4, 16)), "qwen3_moe": ("qwen3-30b-a3b", (2, 8, 32))}
CONDITIONS = ("prose", "code", "mock-uniform")
LAYERS = (0, 3)
TARGET = {"median": 0.05, "p90": 0.10, "MB": (16, 512)}
DRY = {"hidden": 64, "width": 32, "B": (1, 2), "conditions": ("prose",), "layers": (0,)}


def _calibrate(args, out: Path):
    from dodoco.calibrate.api import CalibrateConfig, calibrate

    cfg = CalibrateConfig(
        out=str(out / f"calibration-{args.machine}.json"),
        work=args.work,
        machine=args.machine,
        dry_run=args.dry_run,
        backend=args.backend,
        **({"sizes_mb": (16, 32), "skews": (1.0, 2.0), "shapes": ("qwen3-30b-a3b",)} if args.dry_run else {}),
    )
    return calibrate(cfg, echo=lambda line: print(line, flush=True))


def _configs(args, N: int, dispatchers, out: Path) -> list:
    """The layer replays: every model, condition and batch whose step fits the trace (64 sequences)."""
    from dodoco.compute.shapes import SHAPES
    from dodoco.replay.config import ReplayConfig

    cfgs = []
    for family, (shape, batches) in MODELS.items():
        H, I = (DRY["hidden"], DRY["width"]) if args.dry_run else (SHAPES[shape][0].hidden, SHAPES[shape][0].width)
        for cond in DRY["conditions"] if args.dry_run else CONDITIONS[:1] if args.quick else CONDITIONS:
            for B in DRY["B"] if args.dry_run else batches[:2] if args.quick else batches:
                if N * B > 64:
                    continue
                kernels = ["grouped_mm"] + (
                    ["megatron"]
                    if "megatron" in dispatchers and cond == "prose" and B == batches[0] and not args.dry_run
                    else []
                )
                for kernel in kernels:
                    cfgs.append(
                        ReplayConfig(
                            runs=(str(ROOT / "bench/data/dispatch" / family),),
                            condition=cond,
                            mock="none",
                            batch=B,
                            hidden=H,
                            expert_width=I,
                            layer=True,
                            kernel=kernel,
                            backend=args.backend,
                            dispatcher=tuple(dispatchers) if kernel == "grouped_mm" else ("megatron",),
                            layers=DRY["layers"] if args.dry_run else LAYERS,
                            max_steps=1,
                            iters=3 if args.dry_run else 10,
                            warmup=1 if args.dry_run else 3,
                            timeout_s=args.timeout,
                            out=str(out / f"layer-{family}-{cond}-B{B}-{kernel}.json"),
                            note=f"{family} {cond} B={B} ({shape} experts, {kernel})",
                        )
                    )
    return cfgs


def _fits_memory(cfgs: list, N: int, dry: bool) -> tuple[list, list[str]]:
    """The configs whose experts and buffers fit one GPU (ExpertBench draws its weights in float32), and notes."""
    if dry:
        return cfgs, []
    import torch

    from dodoco.replay.config import build_cases
    from dodoco.compute.kernels import DEFAULT_L2
    from dodoco.replay.layer_run import layer_memory
    from dodoco.replay.runner import plan_memory

    total = torch.cuda.get_device_properties(0).total_memory
    keep, notes = [], []
    for c in cfgs:
        cases, _ = build_cases(c, N)
        need = max(
            layer_memory(c, cases, r, DEFAULT_L2) + plan_memory(cases, c, c.dispatchers, r, DEFAULT_L2)
            for r in range(N)
        )
        if need > 0.8 * total:
            notes.append(f"skipped {c.note}: needs {need / 2**30:.0f} GiB of a {total / 2**30:.0f} GiB GPU")
        else:
            keep.append(c)
    return keep, notes


def _table(doc: dict) -> str:
    lines = [
        f"{doc['machine']}: whole-layer prediction error on held-out routing (16-512 MB per rank; target median "
        f"<= 5%, p90 <= 10%)" + (" -- DRY RUN, not a measurement" if doc["dry_run"] else ""),
        f"{'dispatcher':<12}{'calibration':<14}{'rows':>5}{'median':>9}{'p90':>9}  met",
    ]
    for t in doc["targets"] + doc["cross_machine"]:
        f = lambda v: f"{100 * v:8.1f}%" if v is not None else "       -"  # noqa: E731
        lines.append(
            f"{t['dispatcher']:<12}{t['calibration']:<14}{t['rows']:>5}{f(t['median_abs_err'])}"
            f"{f(t['p90_abs_err'])}  {'yes' if t['met'] else 'no'}"
        )
    where = f"{doc['N']} gloo CPU processes (dry run)" if doc["dry_run"] else f"{doc['N']} GPUs"
    lines.append(f"dodoco calibrate took {doc['calibrate_s']:.0f} s on {where} (target < 300 s on 4 GPUs)")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--machine", default=None, help="machine label, e.g. nvidia-h200-x4 (default: GPU and count)")
    p.add_argument("--out", default=str(ROOT / "bench/results"))
    p.add_argument("--work", default="/tmp/dodoco-calibrate-parts", help="calibrate's parts (outside --out)")
    p.add_argument("--backend", default="nccl")
    p.add_argument("--dry-run", action="store_true", help="gloo on CPU at toy sizes: the path, not a measurement")
    p.add_argument(
        "--quick", action="store_true", help="layer replays of prose at two batches only (calibrate unchanged)"
    )
    p.add_argument("--timeout", type=float, default=300.0)
    return p


def _doc(args, cal, N: int, results: list, skipped: list, t0: float, t_cal: float) -> dict:
    """The result file: every replay, each row beside its predictions, the targets."""
    from dodoco.replay.megatron_layer import grouped_mlp_line
    from dodoco.simulate.layer_compare import compare_rows, predictors, targets

    preds = predictors(cal.path, allow_dry_run=args.dry_run)
    rows = compare_rows(results, preds)
    band = (0, np.inf) if args.dry_run else TARGET["MB"]  # a dry run's KiB-sized rows all count: it checks the path
    return {
        "schema": "dodoco.bench.layer/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": args.machine,
        "N": N,
        "dry_run": args.dry_run,
        "host": cal.calibration.host,
        "calibration": str(cal.path),
        "calibrate_s": t_cal,
        "layer_s": time.time() - t0 - t_cal,
        "predicted_with": {k: v[2] for k, v in preds.items()},
        "rows": rows,
        "targets": targets(rows, "same machine", band),
        "cross_machine": targets(rows, "preset", band),
        "megatron_reference": [r for r in rows if r["kernel"] == "megatron"],
        "skipped": skipped,
        "megatron_grouped_mlp": grouped_mlp_line(),
        "not_measured": {
            k: v["reason"] for res in results for k, v in res["dispatchers"].items() if v["status"] != "measured"
        },
        "replays": results,
    }


def main(argv=None) -> int:
    import tempfile

    from dodoco.calibrate.dispatch import rank_env
    from dodoco.replay.launch import SAFE_ENV, launch_many
    from dodoco.store.atomic import json_safe, write_json

    args = _parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.machine is None:
        from dodoco.host import host_identity

        args.machine = "dry-run-cpu-x2" if args.dry_run else host_identity()["machine"]
    cal = _calibrate(args, out)
    t_cal = time.time() - t0
    N = int(cal.calibration.meta["settings"]["ranks"][-1]) if cal.calibration.meta["settings"]["ranks"] else 1
    with tempfile.TemporaryDirectory(dir=out, prefix=".layer-parts-") as parts:  # only what this run writes
        cfgs, skipped = _fits_memory(
            _configs(args, N, cal.calibration.dispatchers or ["nccl"], Path(parts)), N, args.dry_run
        )
        results = launch_many(cfgs, N, extra_env={**SAFE_ENV, **rank_env()})
    doc = _doc(args, cal, N, results, skipped, t0, t_cal)
    path = out / f"layer-{args.machine}.json"
    write_json(path, json_safe(doc))
    print(f"wrote {path}")
    print(_table(doc))
    return 0


if __name__ == "__main__":
    from dodoco.errors import DodocoError

    try:
        sys.exit(main())
    except DodocoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
