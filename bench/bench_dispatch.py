"""Dispatch benchmark: every dispatcher on model-shaped traffic, the calibration grid and validation replays.

One device call per machine (all replays in one torchrun, one process group), from the repository root:

    python3 bench/bench_dispatch.py --machine nvidia-h200-x2 --out $OUT            # about 6-8 minutes
    python3 bench/bench_dispatch.py --machine nvidia-h200-x2 --out $OUT --quick    # the same code path, ~2 min
    python3 bench/bench_dispatch.py --backend gloo --quick --out /tmp/b            # CPU dry run: H=64, KiB sizes

Replays, each through nccl, megatron, nvshmem and nvshmem-1d (deepep listed with its import error;
megatron-allgather on the model shapes only), N = the GPUs of the machine:

- **model shapes**, 4096 tokens per rank, E = 256 / 128, K = 8, routing from the zoo's token traces
  (``bench/data/dispatch``, observed on CPU with ``--traces``): DeepSeek-V3-shaped (H = 7168, E = 256:
  the routing of ``zoo:qwen3_5_moe``, the zoo's E = 256, K = 8 model, standing in for DeepSeek-V3's
  router, which has the same E and K) and Qwen3-30B-A3B-shaped (H = 2048, ``zoo:qwen3_moe``, E = 128,
  K = 8); real (prose) and mock (mock-uniform) cases, their balanced controls, and receiver-skew
  controls 1.0 to 3.0 (fine near 1) in both patterns (hot-receiver, hot-pair);
- **calibration grid** (kind ``grid``): per-rank sizes 16..512 MB x receiver skews x both patterns,
  E = 256, K = 8, H = 7168 (issue 12 fits its dispatch model on these rows);
- **validation** (kind ``real`` / ``mock``): both models' prose, code and mock-uniform routing at
  per-rank sizes off the grid (about 24, 48, 96, 192, 384 MB: the batch B chosen per size).

Writes ``dispatch-<machine>.json`` under --out (all replays, the bend points, the harness overhead,
notes generated from this run) and prints a short table last. Iterations: 20 timed after 5 warm-up
on the model shapes, 10 after 3 on the grid and validation (the device-time budget); --quick: 5 after 2.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dodoco.replay.config import ReplayConfig  # noqa: E402
from dodoco.replay.launch import launch_many  # noqa: E402
from dodoco.replay.bends import bend_points  # noqa: E402
from dodoco.replay.results import overhead_rows, write_result  # noqa: E402

SHAPES = {
    "deepseek-v3": {"runs": "bench/data/dispatch/qwen3_5_moe", "hidden": 7168},
    "qwen3-30b-a3b": {"runs": "bench/data/dispatch/qwen3_moe", "hidden": 2048},
}
SKEWS = (1.0, 1.02, 1.05, 1.1, 1.15, 1.2, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0)
GRID_MB = (16, 32, 64, 128, 256, 512)
VALIDATION_MB = (24, 48, 96, 192, 384)
CORE = ("nccl", "megatron", "nvshmem", "nvshmem-1d")
SEQ_LEN, K, TOKENS_PER_RANK = 256, 8, 4096
DRY_HIDDEN = 64  # gloo dry run: rows of 64 bf16 and sizes in KiB instead of MiB (the code path, not timings)


def _hidden(args, h: int) -> int:
    return DRY_HIDDEN if args.backend == "gloo" else h


def _unit(args) -> int:
    return 10 if args.backend == "gloo" else 20


def shape_configs(args, N: int, out: Path) -> list[ReplayConfig]:
    quick = args.quick
    return [
        ReplayConfig(
            runs=(str(ROOT / s["runs"]),),
            condition="prose",
            mock="mock-uniform",
            batch=TOKENS_PER_RANK // SEQ_LEN,
            hidden=_hidden(args, s["hidden"]),
            backend=args.backend,
            dispatcher=("all",),
            layers=(0,) if quick else (0, 3),
            max_steps=1,
            skew=(1.0, 1.1, 2.0) if quick else SKEWS,
            skew_patterns=("hot-receiver", "hot-pair"),
            iters=5 if quick else 20,
            warmup=2 if quick else 5,
            timeout_s=args.timeout,
            out=str(out / f"replay-{name}.json"),
            note=f"{name}-shaped traffic on {args.machine}",
        )
        for name, s in SHAPES.items()
    ]


def core(args) -> tuple[str, ...]:
    """The grid's and validation's dispatchers: CORE, less those whose package does not import here
    (listed as not measured by the model-shape replays, which name 'all')."""
    from dodoco.replay.dispatchers import missing

    return tuple(n for n in CORE if missing(n) is None)


def grid_config(args, out: Path) -> ReplayConfig:
    quick = args.quick
    return ReplayConfig(
        grid_sizes=tuple(m << _unit(args) for m in ((16, 128) if quick else GRID_MB)),
        grid_skews=(1.0, 1.1, 2.0) if quick else SKEWS,
        grid_patterns=("hot-receiver", "hot-pair"),
        grid_experts=256,
        grid_topk=K,
        hidden=_hidden(args, 7168),
        backend=args.backend,
        dispatcher=core(args),
        iters=5 if quick else 10,
        warmup=2 if quick else 3,
        timeout_s=args.timeout,
        out=str(out / "replay-grid.json"),
        note=f"calibration grid on {args.machine}",
    )


def validation_configs(args, N: int, out: Path) -> tuple[list[ReplayConfig], list[str]]:
    """Real routing at per-rank sizes off the grid: B = size / (seq_len x K x row bytes), when S allows."""
    cfgs, skipped = [], []
    sizes = VALIDATION_MB[:1] if args.quick else VALIDATION_MB
    for name, s in SHAPES.items():
        per_seq = SEQ_LEN * K * _hidden(args, s["hidden"]) * 2  # bytes one sequence sends per rank (bf16)
        for mb in sizes:
            B = max(1, round((mb << _unit(args)) / per_seq))
            if N * B > 64:
                skipped.append(f"{name} at {mb} MB: needs B={B} x N={N} sequences, the trace has 64")
                continue
            for cond in ("prose",) if args.quick else ("prose", "code", "mock-uniform"):
                cfgs.append(
                    ReplayConfig(
                        runs=(str(ROOT / s["runs"]),),
                        condition=cond,
                        mock="none",
                        batch=B,
                        hidden=_hidden(args, s["hidden"]),
                        backend=args.backend,
                        dispatcher=core(args),
                        layers=(1,),
                        max_steps=1,
                        iters=5 if args.quick else 10,
                        warmup=2 if args.quick else 3,
                        overhead=False,
                        timeout_s=args.timeout,
                        out=str(out / f"v-{name}-{cond}-{mb}.json"),
                        note=f"validation: {name} {cond} B={B} (~{mb} MB per rank)",
                    )
                )
    return cfgs, skipped


def _notes(results: list[dict], bends: list[dict], elapsed: float, N: int, skipped: list[str]) -> list[str]:
    first = results[0]
    notes = [
        f"{len(results)} replays, {sum(len(r['rows']) for r in results)} rows, N={N}, "
        f"{first['device'].get('name', first['backend'])}, {elapsed:.0f} s in one torchrun",
        f"floor link: {first['link']['GBps']:.0f} GB/s per direction ({first['link']['source']})",
    ]
    for name, st in first["dispatchers"].items():
        if st["status"] != "measured":
            notes.append(f"{name} not measured: {st['reason']}")
    for b in bends:
        if b["pattern"] == "hot-receiver" and b["MiB_per_rank"] in (16.0, 128.0, 256.0, 512.0):
            notes.append(
                f"{b['dispatcher']} {b['MiB_per_rank']} MiB hot-receiver: knee at rho "
                f"{b['knee_rho'] if b['knee_rho'] is not None else '> max'}, rho 2 costs "
                f"{b['ratio_at_2'] or float('nan'):.2f}x balanced"
            )
    return notes + [f"skipped: {s}" for s in skipped]


def table(results: list[dict], bends: list[dict]) -> str:
    """Per dispatcher: balanced time at the largest grid size, vs the floor, harness overhead, and the
    hot-receiver knee (smallest rho costing > 5% over balanced) at every grid size."""
    rows = [r for res in results for r in res["rows"] if r["kind"] == "grid" and r["rho"] == 1.0]
    sizes = sorted({b["MiB_per_rank"] for b in bends})
    top = sizes[-1] if sizes else None
    ov = {o["dispatcher"]: o for res in results for o in overhead_rows(res)}
    lines = [
        f"{'dispatcher':<13}{f'balanced ms @{top} MiB':>22}{'vs floor':>9}{'overhead %':>11}   "
        f"knee rho (hot-receiver) @ " + ", ".join(f"{m}" for m in sizes) + " MiB"
    ]
    for d in dict.fromkeys(r["dispatcher"] for r in rows):
        big = [r for r in rows if r["dispatcher"] == d and float(f"{r['per_rank_bytes'] / 2**20:.3g}") == top]
        knees = [
            next(
                (
                    b["knee_rho"]
                    for b in bends
                    if (b["dispatcher"], b["pattern"], b["MiB_per_rank"]) == (d, "hot-receiver", m)
                ),
                "-",
            )
            for m in sizes
        ]
        nan = float("nan")
        t, vf = (big[0]["dispatch"]["median_ms"], big[0]["vs_floor"]) if big else (nan, nan)
        vf = nan if vf is None else vf  # no floor at N=1: nothing crosses a link
        o = ov[d]["overhead_pct_median"] if d in ov else nan
        lines.append(
            f"{d:<13} {t:>21.3f} {vf:>8.2f} {o:>+10.1f}   " + ", ".join("none" if k is None else str(k) for k in knees)
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--machine", default="local", help="machine label for the file name, e.g. nvidia-h200-x2")
    p.add_argument("--out", default=str(ROOT / "bench/results"), help="folder for the JSON")
    p.add_argument("--quick", action="store_true", help="a 2-minute smoke of the same code path")
    p.add_argument("--backend", default="nccl", help="nccl (GPUs) or gloo (CPU dry run)")
    p.add_argument("--ranks", type=int, default=None, help="N (default: the GPUs here; 2 for gloo)")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds without progress before ranks stop")
    args = p.parse_args(argv)
    from dodoco.replay.launch import SAFE_ENV, default_nproc

    N = args.ranks or default_nproc(args.backend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "parts"
    work.mkdir(exist_ok=True)
    val, skipped = validation_configs(args, N, work)
    cfgs = shape_configs(args, N, work) + [grid_config(args, work)] + val
    t0 = time.time()
    path_env = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    results = launch_many(cfgs, N, extra_env={**SAFE_ENV, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path_env})
    elapsed = time.time() - t0
    grid = [r for res in results for r in res["rows"] if r["kind"] == "grid"]
    bends = bend_points(grid)
    doc = {
        "schema": "dodoco.bench.dispatch/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": args.machine,
        "N": N,
        "quick": args.quick,
        "elapsed_s": elapsed,
        "notes": _notes(results, bends, elapsed, N, skipped),
        "bends": bends,
        "overhead": [o for res in results for o in overhead_rows(res)],
        "replays": results,
    }
    path = out / f"dispatch-{args.machine}{'-quick' if args.quick else ''}.json"
    write_result(path, doc)
    for f in sorted(work.glob("*.json")):
        f.unlink()
    work.rmdir()
    print("\n".join(doc["notes"]))
    print(f"wrote {path}")
    print(table(results, bends))
    return 0


if __name__ == "__main__":
    from dodoco.errors import DodocoError

    try:
        sys.exit(main())
    except DodocoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
