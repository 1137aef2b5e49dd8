"""dodoco recommend: which MoE dispatcher for a hardware and EP degree, from replay measurements first."""

from dodoco.commands import add_flags, add_file_flag, add_batch_flag, add_output_flags, add_seed_flag


def register(sub) -> None:
    p = sub.add_parser("recommend", help="which MoE dispatcher to use: measured by dodoco replay, else by rules")
    add_flags(
        p,
        """
        --hardware str   h100, h200, b200, gb200, gb300 or unknown
        --ep       int   EP degree N
        --skew     float measured receiver skew (max/mean rank load)
        --run      str   a run directory: measure the receiver skew at this EP from it
    """,
    )
    add_file_flag(
        p, "--replay", "dodoco replay results: dispatchers measured at this EP on this hardware are ranked", many=True
    )
    add_batch_flag(p, default="1; with --run")
    add_seed_flag(p, "the step order, with --run")
    add_output_flags(p, "the advice (rows, reasons, choice)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import load_config, say, show, write_doc
    from dodoco.recommend import RecommendConfig, advise

    cfg = load_config(RecommendConfig, args)
    advice = advise(cfg)
    show(
        advice["rows"],
        f"dispatcher for {advice['hardware'].upper()} at EP {advice['ep']} ({advice['band']} EP), by {advice['basis']}",
        cfg.json,
        columns=["dispatcher", "rank", "status", "evidence"],
        keep=["dispatcher", "rank", "status", "evidence"],
    )
    basis = "measured" if advice["basis"] == "measured" else "rules, not measured"
    say(f"recommended: {advice['choice']} ({basis})", cfg.json)
    for r in advice["reasons"]:
        say(r, cfg.json, bullet="  - ")
    write_doc(advice, cfg.json, cfg.out)
    return 0
