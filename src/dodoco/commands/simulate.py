"""dodoco simulate: predicted dispatch and MoE-layer time at each EP degree on a described cluster."""

from dodoco.commands import csv_ints, csv_strs


def register(sub) -> None:
    p = sub.add_parser("simulate", help="predict dispatch and MoE-layer time for EP 8..256 on a cluster")
    p.add_argument("runs", nargs="*", help="run directories, or folders holding them")
    p.add_argument("--condition", type=csv_strs, default=None, help="conditions to simulate (default all)")
    p.add_argument("--cluster", default="dgx-h200", help="preset (dgx-h100, dgx-h200) or a TOML file")
    p.add_argument("--ep", type=csv_ints, default=[8, 16, 32, 64, 128, 256], help="EP degrees (8..256)")
    p.add_argument("--batch", type=int, default=1, help="sequences per rank per step B (default 1)")
    p.add_argument("--hidden", type=int, default=2048, help="hidden size H (default 2048)")
    p.add_argument("--dtype", default="bf16", help="dispatched element type (default bf16)")
    p.add_argument("--expert-width", type=int, default=768, help="expert intermediate size I (default 768)")
    p.add_argument("--calibration", nargs="+", default=None, metavar="FILE",
                   help="replay results (dodoco replay --sweep --skew ... --out FILE) to calibrate on")
    p.add_argument("--gemm", default=None, metavar="FILE", help="grouped-GEMM table JSON (default: bundled "
                   "H200 table, scaled to the expert shape)")
    p.add_argument("--placement", default="contiguous", help="contiguous (default), round_robin, eplb")
    p.add_argument("--max-steps", type=int, default=8, help="steps per EP degree (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="write the EP table as JSON ('-' = stdout)")
    p.set_defaults(func=run)


def _gemm(path, hidden: int, width: int):
    from pathlib import Path

    from dodoco.simulate.cluster import PRESETS
    from dodoco.simulate.gemm import load_gemm_table

    if path:
        return load_gemm_table(path).for_shape(hidden, width)
    bundled = sorted(Path(PRESETS).glob("gemm-*.json"))
    return load_gemm_table(bundled[0]).for_shape(hidden, width) if bundled else None


def run(args) -> int:
    from dodoco.commands import emit
    from dodoco.errors import DodocoError, did_you_mean
    from dodoco.replay.config import dtype_bytes
    from dodoco.simulate.cluster import load_cluster
    from dodoco.simulate.layer import simulate_ep
    from dodoco.store import find_runs

    cluster = load_cluster(args.cluster)
    if args.calibration:
        from dodoco.replay.results import load_results
        from dodoco.simulate.calibrate import calibrate, validation_rows

        results = load_results(args.calibration)
        cal, held = calibrate(results)
        emit([{"N": n, **v} for n, v in cal.to_dict()["per_n"].items()],
             f"calibration on {cal.device or 'replays'} (pooled w={cal.w:.3f})")
        emit(validation_rows(cal, results, held), "model error on replays (median absolute %)")
        cluster = cluster.calibrated(cal)
    if not args.runs:
        if args.calibration:
            return 0
        raise DodocoError("name a run directory to simulate (or only --calibration FILE to check the model)")
    runs = find_runs(args.runs)
    if args.condition:
        names = {r.condition for r in runs}
        for c in args.condition:
            if c not in names:
                raise did_you_mean("condition", c, names)
        runs = [r for r in runs if r.condition in args.condition]
    gemm = _gemm(args.gemm, args.hidden, args.expert_width)
    rows = []
    for r in runs:
        out, skipped = simulate_ep(r.counts, args.ep, args.batch, cluster,
                                   row_bytes=args.hidden * dtype_bytes(args.dtype), gemm=gemm,
                                   placement=args.placement, seed=args.seed, max_steps=args.max_steps)
        rows += [{"condition": r.condition, **x} for x in out]
        for n, why in skipped:
            window = " (a window-aggregate import has no per-step traffic)" if r.granularity == "window" else ""
            print(f"skipped EP {n} for {r.condition}: {why}{window}")
    cols = ["condition", "N", "nodes", "MB_per_rank", "recv_skew", "dispatch_ms", "balanced_ms",
            "imbalance_share", "hier_ms", "combine_ms"]
    if gemm is not None:
        cols += ["compute_ms", "compute_straggler_ms", "comm_straggler_ms", "layer_ms"]
    emit(rows, f"predicted dispatch on {cluster.name} (H={args.hidden} {args.dtype}, B={args.batch})",
         json_path=args.json, columns=cols)
    return 0
