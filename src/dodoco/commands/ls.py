"""dodoco ls: list model families, adapters, conditions and placements."""


def register(sub) -> None:
    p = sub.add_parser("ls", help="list families, adapters, conditions, placements")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from dodoco.conditions import CONDITIONS
    from dodoco.models.adapters import ADAPTERS
    from dodoco.models.tiny import FAMILIES

    console = Console()
    console.print("[bold]families[/bold] (tiny:<family>, zoo:<family>)")
    for f in FAMILIES.values():
        console.print(escape(f"  {f.family:13s} {f.mixer:8s} E={f.E:<4d} K={f.K} shared={f.shared_experts}  "
                             f"as {f.real_model}; {f.routing}"))
    for title, registry in (("adapters", ADAPTERS), ("conditions", CONDITIONS)):
        console.print(f"[bold]{title}[/bold]")
        for e in registry.entries():
            console.print(escape(f"  {e.name:13s} {e.summary}"))
    from dodoco.ep.placements import PLACEMENTS
    from dodoco.ingest import FORMATS

    console.print("[bold]placements[/bold] (--placement; fitted ones are fitted on one part of the data "
                  "and evaluated on the other)")
    for spec in PLACEMENTS.values():
        fitted = f"fitted on {spec.fit_on}" if spec.fitted else "not fitted"
        options = f"; options: {', '.join(spec.options)}" if spec.options else ""
        console.print(escape(f"  {spec.name:13s} {spec.summary} ({fitted}{options})"))
    console.print("[bold]import formats[/bold] (dodoco import FORMAT PATH... -o RUN)")
    for e in FORMATS.entries():
        console.print(escape(f"  {e.name:13s} {e.summary}"))
    return 0
