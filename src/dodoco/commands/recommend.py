"""dodoco recommend: which MoE dispatcher for a hardware and EP degree, from replay measurements first."""


def register(sub) -> None:
    p = sub.add_parser("recommend", help="which MoE dispatcher to use: measured by dodoco replay, else by rules")
    p.add_argument("--hardware", required=True, help="h100, h200, b200, gb200, gb300 or unknown")
    p.add_argument("--ep", type=int, required=True, help="EP degree N")
    p.add_argument("--replay", nargs="+", default=None, metavar="FILE",
                   help="dodoco replay results: dispatchers measured at this EP on this hardware are ranked")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--skew", type=float, default=None, help="measured receiver skew (max/mean rank load)")
    g.add_argument("--run", default=None, help="a run directory: measure the receiver skew at this EP from it")
    p.add_argument("--batch", type=int, default=1, help="sequences per rank per step, with --run (default 1)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the advice as JSON ('-' = stdout)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from dodoco.commands import emit
    from dodoco.recommend import recommend, run_skew

    results = None
    if args.replay:
        from dodoco.replay.results import load_results

        results = load_results(args.replay)
    skew = args.skew
    if args.run:
        from dodoco.store import open_run

        skew = run_skew(open_run(args.run), args.ep, args.batch)
    advice = recommend(args.hardware, args.ep, results, skew)
    if args.json == "-":
        print(json.dumps(advice, indent=2))
        return 0
    emit(advice["rows"], f"dispatcher for {advice['hardware'].upper()} at EP {advice['ep']} "
                         f"({advice['band']} EP), by {advice['basis']}",
         columns=["dispatcher", "rank", "status", "evidence"])
    print(f"recommended: {advice['choice']} ({'measured' if advice['basis'] == 'measured' else 'rules, not measured'})")
    for r in advice["reasons"]:
        print(f"  - {r}")
    if args.json:
        from pathlib import Path

        from dodoco.store.atomic import write_json

        write_json(Path(args.json), advice)
    return 0
