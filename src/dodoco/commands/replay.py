"""dodoco replay: time the AlltoAll dispatch and combine of a run's routing on N ranks (torchrun)."""

from dodoco.commands import csv_ints


def _floats(text: str) -> list[float]:
    import argparse

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. 1.5,2") from None


def _size(text: str) -> int:
    """'64K', '512M', '1G' or plain bytes -> bytes (powers of 1024)."""
    import argparse

    t = text.strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size such as 1K, 256M or 1G") from None


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", help="run directories, or a folder holding the real and mock runs")
    p.add_argument("--condition", default=None, help="the real condition (default: the only non-mock run)")
    p.add_argument("--mock", default=None, help="mock condition beside it (default: first mock-* run; 'none')")
    p.add_argument("--batch", type=int, default=1, help="sequences per rank per step B (default 1)")
    p.add_argument("--hidden", type=int, default=2048, help="row width H (default 2048, Qwen3-30B-A3B)")
    p.add_argument("--dtype", default="bf16", help="row element type: bf16 (default), fp16, fp32, fp8")
    p.add_argument("--backend", default="nccl", help="nccl (GPUs) or gloo (CPU dry run)")
    p.add_argument("--nproc", type=int, default=None, help="ranks to start when not under torchrun "
                   "(default: GPUs here for nccl, 2 for gloo)")
    p.add_argument("--placement", default="contiguous", help="contiguous (default), round_robin, eplb")
    p.add_argument("--layers", type=csv_ints, default=None, help="MoE layer indices (default all)")
    p.add_argument("--max-steps", type=int, default=None, help="replay only the first steps")
    p.add_argument("--skew", type=_floats, default=[], help="add synthetic receiver-skew controls, e.g. 1.5,2,3")
    p.add_argument("--iters", type=int, default=30, help="timed iterations per case (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    p.add_argument("--buffers", type=int, default=4, help="minimum rotating buffer sets (default 4)")
    p.add_argument("--sweep", action="store_true", help="also the raw all_to_all_single size sweep")
    p.add_argument("--sweep-min", type=_size, default=1 << 10, help="smallest sweep size per rank (1K)")
    p.add_argument("--sweep-max", type=_size, default=512 << 20, help="largest sweep size per rank (512M)")
    p.add_argument("--no-check", action="store_true", help="skip the received-rows check")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds without progress before ranks stop")
    p.add_argument("--dispatcher", default="alltoall", help="alltoall (default) or deepep (if importable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the step order (default 0)")
    p.add_argument("--note", default="", help="free text stored in the result")
    p.add_argument("--out", default=None, metavar="PATH", help="write the full result JSON here")
    p.add_argument("--json", default=None, metavar="PATH", help="write the summary table as JSON ('-' = stdout)")


def config_from_args(args):
    from dodoco.replay.config import ReplayConfig

    return ReplayConfig(
        runs=tuple(args.runs), condition=args.condition, mock=args.mock, batch=args.batch, hidden=args.hidden,
        dtype=args.dtype, backend=args.backend, placement=args.placement,
        layers=tuple(args.layers) if args.layers else None, max_steps=args.max_steps, skew=tuple(args.skew),
        iters=args.iters, warmup=args.warmup, buffers=args.buffers, sweep=args.sweep,
        sweep_min=args.sweep_min, sweep_max=args.sweep_max, check=not args.no_check, timeout_s=args.timeout,
        dispatcher=args.dispatcher, seed=args.seed, note=args.note, out=args.out, json=args.json)


def print_result(result: dict, json_path=None) -> None:
    from dodoco.commands import emit
    from dodoco.replay.results import overhead_rows, sweep_rows

    title = (f"AlltoAll replay, N={result['N']}, H={result['hidden']} {result['dtype']}, "
             f"{result['device'].get('name', result['backend'])} ({result['timing']})")
    emit(result["summary"], title, json_path=json_path,
         columns=["condition", "kind", "cases", "MB_per_rank", "recv_skew", "dispatch_ms", "dispatch_p10",
                  "dispatch_p90", "combine_ms", "busbw_GBps", "vs_balanced"])
    if json_path == "-":
        return
    if result.get("overhead"):
        emit(overhead_rows(result), "harness overhead: balanced replay vs raw all_to_all_single, same bytes")
    if result.get("sweep"):
        emit(sweep_rows(result), "raw all_to_all_single, uniform splits (nccl-tests busbw convention)")


def register(sub) -> None:
    p = sub.add_parser("replay", help="time dispatch/combine AlltoAll of a run's routing on N GPUs (torchrun)")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.replay.launch import default_nproc, launch, preflight, under_torchrun, worker_run

    cfg = config_from_args(args)
    if under_torchrun():  # `dodoco replay` started by the user's own torchrun: be one rank
        return worker_run(cfg)
    if cfg.dispatcher == "deepep":
        from dodoco.replay.deepep import require_deepep

        require_deepep()
    nproc = args.nproc or default_nproc(cfg.backend)
    preflight(cfg, nproc)
    return launch(cfg, nproc)
