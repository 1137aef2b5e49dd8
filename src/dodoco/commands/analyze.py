"""dodoco analyze: metrics of run directories (summary, metrics.parquet) and their EP scan."""

from dodoco.commands import add_flags, add_batch_flag, add_output_flags, add_seed_flag

SUMMARY_COLUMNS = ["model", "condition", "seq_len", "batch", "steps", "gini", "max_mean"]
SUMMARY_KEEP = ["model", "condition", "batch", "gini", "max_mean"]
EP_COLUMNS = [
    "model",
    "condition",
    "regime",
    "batch",
    "ep",
    "placement",
    "max_mean",
    "receiver_skew",
    "receiver_skew_lo",
    "receiver_skew_hi",
    "steps",
    "part",
    "recv_max_mean",
    "max_mean_phys",
]
EP_KEEP = ["model", "condition", "batch", "ep", "placement", "max_mean", "receiver_skew"]


def register(sub) -> None:
    p = sub.add_parser("analyze", help="summarise runs, write their metrics.parquet, scan EP degrees")
    p.add_argument("runs", nargs="*", help="run directories, or folders holding them")
    add_batch_flag(p, many=True, default="1,2,4,8,16,32")
    add_flags(
        p,
        """
        --ep        ints EP degrees N for the EP scan (e.g. 4,8,16,32)
        --placement strs placements for the EP scan (dodoco ls; default contiguous)
    """,
    )
    add_seed_flag(p)
    add_output_flags(p, "every table (summary, ep, notes) as one document")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.analysis import AnalyzeConfig, analyze
    from dodoco.commands import load_config, note, nothing_to_do, show, write_doc

    cfg = load_config(AnalyzeConfig, args)
    result = analyze(cfg)
    shown = [{**r, "steps": "-" if r["steps"] is None else r["steps"]} for r in result.summary]
    show(
        shown,
        "routing imbalance (model level; batch all = every sequence summed)",
        cfg.json,
        columns=SUMMARY_COLUMNS,
        keep=SUMMARY_KEEP,
    )
    if cfg.scan:
        show(
            result.ep,
            "EP scan (model level: mean over steps, bootstrap 95% interval)",
            cfg.json,
            columns=[c for c in EP_COLUMNS if any(c in r for r in result.ep)] or None,
            keep=EP_KEEP,
        )
    for n in result.notes:
        note(n)
    write_doc(result.tables(), cfg.json, cfg.out)
    if not result.summary and not result.ep:
        return nothing_to_do("no run gave a row")
    return 0
