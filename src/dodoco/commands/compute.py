"""dodoco compute: a rank's expert time predicted from its loads, or measured from a run on this GPU."""

from dodoco.commands import add_flags, add_file_flag, add_batch_flag, add_out_flag, add_seed_flag, csv_ints


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("compute", help="expert compute: predict from loads (--loads) or measure a run's ranks on a GPU")
    p.add_argument("runs", nargs="*", help="run directories to measure (a GPU); none with --loads")
    p.add_argument(
        "--loads",
        metavar="LOADS.json",
        help="JSON list of lists: tokens per local expert, one list per rank (predict, no GPU)",
    )
    add_flags(
        p,
        """
        --gpu       str  the GPU to predict for: h100, h200 (its shipped calibration)
        --kernel    strs grouped_mm (default), loop, megatron
        --shape     str  a named expert shape, e.g. deepseek-v3, qwen3-30b-a3b
        --hidden    int  hidden size H of the routed expert
        --width     int  expert width I (moe_intermediate_size)
        --act       str  with --hidden/--width: swiglu (default) or relu2 (ungated, Nemotron-H)
        --placement str  contiguous (default), round_robin, eplb, ...
        --layers    ints MoE layer indices (default all)
        --max-steps int  steps per EP degree (default 1)
        --which     strs ranks: busiest,median,lightest (default all three)
        --device    str  cuda (default), cuda:N, or cpu for a dry run
    """,
    )
    add_file_flag(p, "--calibration", "a compute calibration (dodoco calibrate)")
    p.add_argument("--ep", type=csv_ints, help="EP degrees to measure (default 8)")
    add_batch_flag(p)
    add_seed_flag(p)
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="JSON to PATH, or to stdout alone when no PATH is given (predict: a list of ms)",
    )
    add_out_flag(p, "the whole result (rows, notes) as JSON", metavar="FILE")
    add_config_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import check_output_file, emit, note, write_doc
    from dodoco.compute.api import ComputeConfig, compute

    check_output_file(args.json)
    check_output_file(args.out, "--out")
    args.runs = tuple(args.runs) or None
    res = compute(ComputeConfig.from_args(args))
    write_doc(res.to_dict(), None, args.out)
    if res.predicted_ms is not None:  # predict: --json is the list of milliseconds, in the order of the loads
        if args.json != "-":
            emit(res.rows, res.title, columns=res.columns, keep=["rank", "predicted_ms"])
        write_doc(res.predicted_ms, args.json)
    else:
        emit(
            res.rows,
            res.title,
            json_path=args.json,
            columns=res.columns,
            keep=["model", "N", "which", "kernel", "measured_ms", "predicted_ms"],
        )
    for n in res.notes:
        note(n)
    return 0
