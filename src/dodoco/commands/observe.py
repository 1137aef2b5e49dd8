"""dodoco observe: record routing of a model over data conditions into run directories.

Flags are the fields of ``dodoco.observe.config.ObserveConfig`` (also from ``--config FILE.toml``);
defaults live there, so the parser leaves them unset."""

from dodoco.commands import add_flags, add_batch_flag, add_json_flag, add_seed_flag


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("observe", help="record per-sequence routing counts over data conditions")
    add_flags(
        p,
        """
        --model      str tiny:<family>, zoo:<family>, a local path or a hub id
        --conditions str comma-separated: mock-uniform, mock-ramp, mock-unigram, prose, code, math, multilingual,
                         file:PATH, hf:DATASET[:CONFIG[:SPLIT[:REVISION]]]
        --seq-len    int tokens per sequence
        --sequences  int sequences per condition (S)
        --dtype      str auto (default), float32, bfloat16, float16
        --device     str cpu (default), cuda, cuda:N, auto, or auto-map (device_map=auto)
    """,
    )
    p.add_argument("-o", "--out", help="folder; one run directory per condition inside it")
    p.add_argument("--batch-size", type=int, help="sequences per forward pass (default 8)")
    add_seed_flag(p, "mock ids and random tiny weights")
    p.add_argument("--traces", action="store_true", default=None, help="also store top-k indices per token")
    p.add_argument(
        "--trust-remote-code", action="store_true", default=None, help="allow a checkpoint's own Python code"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace a different observed run in a run directory (never other files)",
    )
    add_batch_flag(p, many=True, default="1,2,4,8,16,32; of the summary printed")
    add_json_flag(p, "the summary table")
    add_config_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.analysis import summary_rows
    from dodoco.commands import check_output_file, csv_strs, emit
    from dodoco.observe.config import ObserveConfig
    from dodoco.observe.runner import dist_context, observe_runs

    conditions = None if args.conditions is None else tuple(csv_strs(args.conditions))
    cfg = ObserveConfig.from_args(args, conditions=conditions)
    check_output_file(args.json)
    paths = observe_runs(cfg)
    if dist_context()[0] != 0:
        return 0  # under torchrun, rank 0 reports
    emit(
        summary_rows(paths, cfg.batch),
        "routing imbalance (model-level; batch all = every sequence summed)",
        json_path=args.json,
        columns=["model", "condition", "seq_len", "batch", "gini", "max_mean"],
        keep=["model", "condition", "batch", "gini", "max_mean"],
    )
    return 0
