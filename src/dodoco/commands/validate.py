"""dodoco validate: check run directories (or folders of them): schema, shapes, checksums, stray files."""

from dodoco.commands import add_json_flag, add_out_flag


def register(sub) -> None:
    p = sub.add_parser(
        "validate", help="check run directories, or folders holding them (schema, shapes, checksums, stray files)"
    )
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    add_json_flag(p, "one row per run and problem (status ok or problem)")
    add_out_flag(p, "write the same JSON document to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import check_output_file, say, write_doc
    from dodoco.store.run import run_dirs
    from dodoco.store.validate import validate_run

    check_output_file(args.json)
    check_output_file(args.out, "--out")
    rows = []
    for path in run_dirs(args.runs):
        problems = validate_run(path)
        rows += [{"run": str(path), "status": "problem", "problem": p} for p in problems] or [
            {"run": str(path), "status": "ok", "problem": None}
        ]
    for r in rows:
        say(f"{r['run']}: {r['problem'] or 'ok'}", args.json)
    write_doc(rows, args.json, args.out)
    return 1 if any(r["status"] != "ok" for r in rows) else 0
