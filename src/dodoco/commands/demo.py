"""dodoco demo: every zoo family x (mock-uniform + four real conditions) on CPU, ending in the table and
the verdicts in sentences."""


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the embedded default: five zoo models x five conditions on CPU")
    p.add_argument("-o", "--out", default=None, help="output folder (default runs/demo)")
    p.add_argument("--models", default=None, choices=("zoo", "tiny"),
                   help="'zoo' (small models with trained routers, default) or 'tiny' (random routers)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default 256)")
    p.add_argument("--sequences", type=int, default=None, help="sequences per condition (default 64)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON ('-' = stdout only)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from dodoco.commands import check_output_file, emit
    from dodoco.demo import DemoConfig, run_demo

    cfg = DemoConfig.from_args(args)
    check_output_file(cfg.json)
    result = run_demo(cfg)
    emit(result.rows, "routing imbalance, model level: per-step Gini (mean over steps) at batch B, and over all "
         "sequences", json_path=cfg.json)
    if cfg.json == "-":
        return 0
    console = Console()
    if cfg.models == "tiny":
        console.print("[bold yellow]These tiny models have random, untrained routers:[/bold yellow] the numbers "
                      "show that the pipeline works end to end; they are not findings about any real model.")
    else:
        console.print("[bold]The zoo:[/bold] five small MoE models (hidden size 64, each family's real E, K, shared "
                      "experts, routing function and layer pattern) trained by DODOCO on the train split of its "
                      "bundled text; the conditions read only held-out text. They are not the paper's checkpoints: "
                      "for those, observe the real models (dodoco observe --model <hub id> ...). Model cards: "
                      "dodoco zoo ls; results: docs/zoo-results.md.")
    console.print(f"[bold]What these {len(result.paths)} runs show[/bold] (95% intervals in brackets; "
                  "dodoco findings for every run's detail):")
    for sentence in result.findings.headlines:
        console.print(f"- {sentence}", markup=False, highlight=False)
    console.print(f"runs in {cfg.out}/ ({result.seconds:.0f} s). Next: dodoco report {cfg.out} -o report/",
                  markup=False, highlight=False)
    return 0
