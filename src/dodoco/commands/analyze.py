"""dodoco analyze: metrics of run directories, summary table, metrics.parquet."""

from dodoco.commands import csv_ints, csv_strs


def register(sub) -> None:
    p = sub.add_parser("analyze", help="summarise runs and write their metrics.parquet")
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("--batch", type=csv_ints, default=None, help="batch sizes B (default 1,2,4,8,16,32)")
    p.add_argument("--ep", type=csv_ints, default=None, help="EP degrees N for the EP scan (e.g. 4,8,16,32)")
    p.add_argument("--placement", type=csv_strs, default=None, help="contiguous, round_robin, eplb")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON ('-' = stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.analysis import summary_rows
    from dodoco.commands import emit

    rows = summary_rows(args.runs, args.batch)
    emit(rows, "routing imbalance (model-level; batch 0 = all sequences)", json_path=args.json,
         columns=["model", "condition", "seq_len", "batch", "gini", "max_mean"])
    if args.ep or args.placement:
        from dodoco.commands.analyze_ep import run_ep

        run_ep(args)
    return 0
