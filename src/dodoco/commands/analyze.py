"""dodoco analyze: metrics of run directories (summary, metrics.parquet) and their EP scan."""

from dodoco.commands import csv_ints, csv_strs

SUMMARY_COLUMNS = ["model", "condition", "seq_len", "batch", "steps", "gini", "max_mean"]
EP_COLUMNS = ["model", "condition", "regime", "batch", "ep", "placement", "part", "steps", "max_mean",
              "receiver_skew", "receiver_skew_lo", "receiver_skew_hi", "recv_max_mean", "max_mean_phys"]


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("analyze", help="summarise runs, write their metrics.parquet, scan EP degrees")
    p.add_argument("runs", nargs="*", help="run directories, or folders holding them")
    p.add_argument("--batch", type=csv_ints, default=None,
                   help="sequences per rank per step B (default 1,2,4,8,16,32)")
    p.add_argument("--ep", type=csv_ints, default=None, help="EP degrees N for the EP scan (e.g. 4,8,16,32)")
    p.add_argument("--placement", type=csv_strs, default=None,
                   help="placements for the EP scan (dodoco ls; default contiguous)")
    p.add_argument("--seed", type=int, default=None, help="seed of the step order (default 0)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write every table as one JSON document ('-' = stdout only)")
    add_config_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from dodoco.analysis import AnalyzeConfig, analyze
    from dodoco.commands import check_output_file, emit
    from dodoco.report.tables import to_json

    cfg = AnalyzeConfig.from_args(args)
    check_output_file(cfg.json)
    result = analyze(cfg)
    if cfg.json == "-":
        print(to_json(result.tables()))
        return 0
    shown = [{**r, "steps": "-" if r["steps"] is None else r["steps"]} for r in result.summary]
    emit(shown, "routing imbalance (model level; batch all = every sequence summed)",
         columns=SUMMARY_COLUMNS)
    if cfg.scan:
        emit(result.ep, "EP scan (model level: mean over steps, bootstrap 95% interval)",
             columns=[c for c in EP_COLUMNS if any(c in r for r in result.ep)] or None)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if cfg.json:
        from pathlib import Path

        from dodoco.store.atomic import write_bytes

        write_bytes(Path(cfg.json), to_json(result.tables()).encode())
    return 0
