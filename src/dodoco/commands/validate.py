"""dodoco validate: check a run directory's schema, shapes and checksums."""


def register(sub) -> None:
    p = sub.add_parser("validate", help="check run directories (schema, shapes, checksums)")
    p.add_argument("runs", nargs="+")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.store.validate import validate_run

    bad = 0
    for path in args.runs:
        problems = validate_run(path)
        if problems:
            bad += 1
            for problem in problems:
                print(f"{path}: {problem}")
        else:
            print(f"{path}: ok")
    return 1 if bad else 0
