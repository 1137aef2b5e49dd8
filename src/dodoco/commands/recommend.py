"""dodoco recommend: which MoE dispatcher for a hardware and EP degree, from replay measurements first."""

from dodoco.commands import add_batch_flag, add_json_flag, add_out_flag


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("recommend", help="which MoE dispatcher to use: measured by dodoco replay, else by rules")
    p.add_argument("--hardware", default=None, help="h100, h200, b200, gb200, gb300 or unknown")
    p.add_argument("--ep", type=int, default=None, help="EP degree N")
    p.add_argument("--replay", nargs="+", default=None, metavar="FILE",
                   help="dodoco replay results: dispatchers measured at this EP on this hardware are ranked")
    p.add_argument("--skew", type=float, default=None, help="measured receiver skew (max/mean rank load)")
    p.add_argument("--run", default=None, help="a run directory: measure the receiver skew at this EP from it")
    add_batch_flag(p, default="1; with --run")
    p.add_argument("--seed", type=int, default=None, help="seed of the step order, with --run (default 0)")
    add_json_flag(p, "the advice (rows, reasons, choice)")
    add_out_flag(p, "write the same JSON document to this file")
    add_config_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import check_output_file, say, show, write_doc
    from dodoco.recommend import RecommendConfig, advise

    cfg = RecommendConfig.from_args(args)
    check_output_file(cfg.json)
    check_output_file(cfg.out, "--out")
    advice = advise(cfg)
    show(advice["rows"], f"dispatcher for {advice['hardware'].upper()} at EP {advice['ep']} ({advice['band']} EP), "
         f"by {advice['basis']}", cfg.json, columns=["dispatcher", "rank", "status", "evidence"],
         keep=["dispatcher", "rank", "status", "evidence"])
    basis = "measured" if advice["basis"] == "measured" else "rules, not measured"
    say(f"recommended: {advice['choice']} ({basis})", cfg.json)
    for r in advice["reasons"]:
        say(r, cfg.json, bullet="  - ")
    write_doc(advice, cfg.json, cfg.out)
    return 0
