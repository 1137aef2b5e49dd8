"""dodoco ls: list model families, adapters, conditions, placements and import formats."""

from dodoco.commands import add_json_flag, add_out_flag


def register(sub) -> None:
    p = sub.add_parser("ls", help="list families, adapters, conditions, placements, import formats")
    add_json_flag(p, "every list (families, adapters, conditions, placements, import formats)")
    add_out_flag(p, "write the same JSON document to this file")
    p.set_defaults(func=run)


def listing() -> dict[str, list[dict]]:
    """What ``dodoco ls`` lists: {section: [{"name", "summary", ...}]}."""
    from dodoco.conditions import CONDITIONS
    from dodoco.ep.placements import PLACEMENTS
    from dodoco.ingest import FORMATS
    from dodoco.models.adapters import ADAPTERS
    from dodoco.models.tiny import FAMILIES

    fams = [
        {
            "name": f.family,
            "summary": f"{f.mixer} E={f.E} K={f.K} shared={f.shared_experts} as {f.real_model}; {f.routing}",
            "mixer": f.mixer,
            "E": f.E,
            "K": f.K,
            "shared_experts": f.shared_experts,
            "real_model": f.real_model,
            "routing": f.routing,
        }
        for f in FAMILIES.values()
    ]
    places = [
        {
            "name": s.name,
            "summary": f"{s.summary} ({f'fitted on {s.fit_on}' if s.fitted else 'not fitted'}"
            f"{'; options: ' + ', '.join(s.options) if s.options else ''})",
            "fitted": s.fitted,
            "fit_on": s.fit_on,
            "options": list(s.options),
        }
        for s in PLACEMENTS.values()
    ]
    return {
        "families": fams,
        "adapters": [{"name": e.name, "summary": e.summary} for e in ADAPTERS.entries()],
        "conditions": [{"name": e.name, "summary": e.summary} for e in CONDITIONS.entries()],
        "placements": places,
        "import formats": [{"name": e.name, "summary": e.summary} for e in FORMATS.entries()],
        **_compute_lists(),
    }


def _compute_lists() -> dict[str, list[dict]]:
    """Expert shapes, expert kernels and the compute calibrations DODOCO ships (``dodoco.compute``)."""
    from dodoco.compute.model import KERNELS, load_model, shipped_models
    from dodoco.compute.shapes import SHAPES

    shapes = [
        {"name": n, "summary": f"{s.label()}: {models}", "hidden": s.hidden, "width": s.width}
        for n, (s, models) in SHAPES.items()
    ]
    cals = []
    for (gpu, kernel), path in shipped_models().items():
        m = load_model(path)
        held = m.info.get("held_out", {})
        cals.append(
            {
                "name": f"{gpu}/{kernel}",
                "summary": f"{m.label()}; form {m.form}, grid held-out median "
                f"{100 * held.get('median_abs_err', float('nan')):.1f}% (docs/compute.md)",
                "file": path.name,
            }
        )
    return {
        "expert shapes": shapes,
        "expert kernels": [{"name": k, "summary": v} for k, v in KERNELS.items()],
        "compute calibrations": cals,
    }


HEADINGS = {
    "families": "families (tiny:<family>, zoo:<family>)",
    "adapters": "adapters",
    "conditions": "conditions",
    "placements": "placements (--placement; fitted ones are fitted on one part of the data and evaluated on the other)",
    "import formats": "import formats (dodoco import FORMAT PATH... -o RUN)",
    "expert shapes": "expert shapes (--shape NAME of compute, simulate, replay --layer, export neusim)",
    "expert kernels": "expert kernels (--kernel of compute and simulate)",
    "compute calibrations": "compute calibrations shipped (dodoco compute --gpu GPU --kernel KERNEL)",
}


def run(args) -> int:
    from dodoco.commands import check_output_file, say, write_doc

    check_output_file(args.json)
    check_output_file(args.out, "--out")
    doc = listing()
    for section, rows in doc.items():
        say(HEADINGS[section], args.json)
        for r in rows:
            say(f"{r['name']:13s} {r['summary']}", args.json, bullet="  ")
    write_doc(doc, args.json, args.out)
    return 0
