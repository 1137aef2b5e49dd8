"""Subcommands of the ``dodoco`` CLI, one module each."""


def csv_ints(text: str) -> list[int]:
    """Parse ``"1,2,4"`` into ``[1, 2, 4]`` (argparse type)."""
    import argparse

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers, e.g. 1,2,4") from None


def csv_strs(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def check_output_file(path, flag: str = "--json") -> None:
    """Refuse an output file whose folder does not exist or that is a folder (one line, before any work)."""
    from pathlib import Path

    from dodoco.errors import DodocoError

    if path in (None, "-"):
        return
    p = Path(path)
    if p.is_dir():
        raise DodocoError(f"{flag} {p} is a folder: give a file name, e.g. {p / 'out.json'}")
    if not p.parent.is_dir():
        raise DodocoError(f"{flag} {p}: the folder {p.parent} does not exist: create it first or choose another path")


def emit(rows: list[dict], title: str, *, json_path=None, columns=None) -> None:
    """Print a table, and write its JSON when ``json_path`` is given (``-`` prints JSON only)."""
    from dodoco.report.tables import print_table, to_json

    check_output_file(json_path)
    if json_path == "-":
        print(to_json(rows))
        return
    print_table(rows, title, columns)
    if json_path:
        from pathlib import Path

        from dodoco.store.atomic import write_bytes

        write_bytes(Path(json_path), to_json(rows).encode())
