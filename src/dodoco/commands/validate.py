"""dodoco validate: check run directories (or folders of them): schema, shapes, checksums, stray files."""


def register(sub) -> None:
    p = sub.add_parser("validate", help="check run directories, or folders holding them (schema, shapes, "
                                        "checksums, stray files)")
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.store.run import run_dirs
    from dodoco.store.validate import validate_run

    bad = 0
    for path in run_dirs(args.runs):
        problems = validate_run(path)
        bad += bool(problems)
        for problem in problems or ["ok"]:
            print(f"{path}: {problem}")
    return 1 if bad else 0
