"""dodoco observe: record routing of a model over data conditions into run directories."""

from dodoco.commands import csv_ints, csv_strs


def register(sub) -> None:
    p = sub.add_parser("observe", help="record per-sequence routing counts over data conditions")
    p.add_argument("--model", required=True, help="tiny:<family>, zoo:<family>, a local path or a hub id")
    p.add_argument("--conditions", required=True, type=csv_strs,
                   help="comma-separated: mock-uniform, mock-ramp, mock-unigram, prose, code, math, "
                        "multilingual, file:PATH, hf:DATASET[:CONFIG[:SPLIT]]")
    p.add_argument("--seq-len", type=int, required=True, help="tokens per sequence")
    p.add_argument("--sequences", type=int, required=True, help="sequences per condition (S)")
    p.add_argument("--out", required=True, help="folder; one run directory per condition inside it")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, auto, or auto-map (device_map=auto)")
    p.add_argument("--traces", action="store_true", help="also store top-k indices per token (tokens.npy)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a checkpoint's own Python code")
    p.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    p.add_argument("--batch", type=csv_ints, default=None, help="batch sizes for metrics (default 1,2,4,8,16,32)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.analysis import summary_rows
    from dodoco.commands import emit
    from dodoco.observe.runner import observe

    paths = observe(args.model, args.conditions, seq_len=args.seq_len, sequences=args.sequences, out=args.out,
                    batch_size=args.batch_size, seed=args.seed, dtype=args.dtype, device=args.device,
                    traces=args.traces, trust_remote_code=args.trust_remote_code, overwrite=args.overwrite,
                    analyze=False)
    from dodoco.observe.runner import dist_context

    if dist_context()[0] != 0:
        return 0  # under torchrun, rank 0 reports
    emit(summary_rows(paths, args.batch), "routing imbalance (model-level; batch all = every sequence summed)",
         columns=["model", "condition", "seq_len", "batch", "gini", "max_mean"])
    return 0
