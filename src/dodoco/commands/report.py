"""dodoco report: run directories -> one self-contained HTML report, PNG figures, CSV tables."""

from dodoco.commands import csv_ints, csv_strs


def register(sub) -> None:
    p = sub.add_parser("report", help="HTML report (figures, tables, verdicts) of run directories")
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (report.html, fig-*.png, *.csv)")
    p.add_argument("--batch", type=csv_ints, default=None, help="batch sizes B for per-step Gini (default 1,2,4,8,16,32)")
    p.add_argument("--ep", type=csv_ints, default=None,
                   help="EP degrees N (default 4,8,16,32 and larger powers of two up to E)")
    p.add_argument("--ep-batch", type=int, default=None,
                   help="per-rank batch B of the EP scan (default: largest of 1,2,4,8 with 32*B <= sequences)")
    p.add_argument("--placement", type=csv_strs, default=None, help="placements to scan (default contiguous,round_robin)")
    p.add_argument("--ref-batch", type=int, default=8, help="batch size of the bands and the per-step Gini matrix")
    p.add_argument("--threshold", type=float, default=0.05, help="EP invariance threshold (relative change)")
    p.add_argument("--low", type=float, default=0.15, help="data-resilient band: prose Gini <= LOW")
    p.add_argument("--high", type=float, default=0.24, help="concentrated band: every real-text Gini >= HIGH")
    p.add_argument("--groups", type=int, default=2, help="number of data-derived groups of the bands")
    p.add_argument("--heatmap", type=csv_strs, default=None, metavar="RUNS",
                   help="runs to draw heatmaps for (paths or model/condition; default: every run, up to 12)")
    p.add_argument("--attach", nargs="+", default=(), metavar="JSON",
                   help="result files (replay/simulate JSON) for the sections that read them")
    p.add_argument("--title", default="DODOCO routing report")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the verdict table as JSON ('-' = stdout)")
    p.add_argument("--quiet", action="store_true", help="do not print section timings")
    p.set_defaults(func=run)


def options_from_args(args):
    """ReportOptions from parsed arguments (errors name the bad value)."""
    from dodoco.errors import DodocoError
    from dodoco.report.build import ReportOptions

    kw = {"ref_batch": args.ref_batch, "threshold": args.threshold, "low": args.low, "high": args.high,
          "groups": args.groups, "title": args.title, "seed": args.seed}
    if args.batch:
        kw["batches"] = tuple(args.batch)
    if args.ep:
        kw["ep"] = tuple(args.ep)
    if args.ep_batch:
        kw["ep_batch"] = args.ep_batch
    if args.placement:
        from dodoco.ep.placements import PLACEMENTS
        from dodoco.errors import did_you_mean

        for name in args.placement:
            if name not in PLACEMENTS:
                raise did_you_mean("placement", name, PLACEMENTS)
        kw["placements"] = tuple(args.placement)
    if args.heatmap:
        kw["heatmap_runs"] = tuple(args.heatmap)
    for name in ("ref_batch", "groups"):
        if kw[name] < 1:
            raise DodocoError(f"--{name.replace('_', '-')} must be >= 1, got {kw[name]}")
    if any(b < 1 for b in kw.get("batches", ())) or (args.ep_batch is not None and args.ep_batch < 1):
        raise DodocoError(f"batch sizes must be >= 1, got --batch {args.batch} --ep-batch {args.ep_batch}")
    return ReportOptions(**kw)


def run(args) -> int:
    import json
    from pathlib import Path

    from dodoco.commands import emit
    from dodoco.report.build import build_report

    path = build_report(args.runs, args.out, options_from_args(args), attachments=args.attach, quiet=args.quiet)
    verdicts = json.loads((Path(args.out) / "verdicts.json").read_text())
    rows = [{"finding": k, "verdict": v["verdict"]} for k, v in verdicts.items()]
    if args.json != "-":
        print(f"report: {path}")
    emit(rows, "verdicts", json_path=args.json, columns=["finding", "verdict"])
    return 0
