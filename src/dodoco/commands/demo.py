"""dodoco demo: every zoo family x (mock-uniform + four real conditions) on CPU, ending in the table and
the verdicts in sentences."""

from dodoco.commands import add_flags, add_out_flag, add_output_flags

ZOO_NOTE = (
    "The zoo: five small MoE models (hidden size 64, each family's real E, K, shared experts, routing "
    "function and layer pattern) trained by DODOCO on the train split of its bundled text; the conditions "
    "read only held-out text. They are not the paper's checkpoints: for those, observe the real models "
    "(dodoco observe --model <hub id> ...). Model cards: dodoco zoo ls; results: docs/zoo-results.md."
)
TINY_NOTE = (
    "These tiny models have random, untrained routers: the numbers show that the pipeline works end to "
    "end; they are not findings about any real model."
)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the embedded default: five zoo models x five conditions on CPU")
    add_out_flag(p, "output folder of the runs (default runs/demo)", metavar="DIR")
    p.add_argument(
        "--models",
        choices=("zoo", "tiny"),
        help="'zoo' (small models with trained routers, default) or 'tiny' (random routers)",
    )
    add_flags(
        p,
        """
        --seq-len   int tokens per sequence (default 256)
        --sequences int sequences per condition (default 64)
    """,
    )
    add_output_flags(p, "the table, the closing sentences and the runs written", out_what=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import load_config, say, show, write_doc
    from dodoco.demo import DemoConfig, run_demo

    cfg = load_config(DemoConfig, args, out_is_file=False)  # -o: the folder of the runs, made here
    result = run_demo(cfg)
    show(
        result.rows,
        "routing imbalance, model level: per-step Gini (mean over steps) at batch B, and over all sequences",
        cfg.json,
        keep=["model", "condition"],
    )
    say(TINY_NOTE if cfg.models == "tiny" else ZOO_NOTE, cfg.json)
    say(
        f"What these {len(result.paths)} runs show (95% intervals in brackets; dodoco findings for every run's "
        "detail):",
        cfg.json,
    )
    for sentence in result.findings.headlines:
        say(sentence, cfg.json, bullet="- ")
    say(f"runs in {cfg.out}/ ({result.seconds:.0f} s). Next: dodoco report {cfg.out} -o report/", cfg.json)
    write_doc(
        {
            "rows": result.rows,
            "headlines": list(result.findings.headlines),
            "runs": [str(p) for p in result.paths],
            "seconds": round(result.seconds),
        },
        cfg.json,
    )
    return 0
