"""Subcommands of the ``dodoco`` CLI, one module each, and the flags and output they share.

The contract every command keeps (README "Command line", enforced by tests/test_cli_contract.py):
results on stdout (``--json -``: the JSON document and nothing else), diagnostics on stderr,
``--json PATH`` the printed tables as JSON, ``-o PATH`` the command's output, ``--config FILE``
where the command reads settings; exit status 0 results, 1 error, 2 usage, ``NOTHING_TO_DO`` (3)
when the command ran and had nothing to do (one line on stderr says why).
"""

#: Exit status of a command that ran and had nothing to do (e.g. every EP degree skipped).
NOTHING_TO_DO = 3
#: The one meaning of ``--batch`` in every command.
BATCH_HELP = "sequences per rank per step B"


def csv_ints(text: str) -> list[int]:
    """Parse ``"1,2,4"`` into ``[1, 2, 4]`` (argparse type)."""
    import argparse

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers, e.g. 1,2,4") from None


def csv_strs(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def csv_floats(text: str) -> list[float]:
    """Parse ``"1.5,2"`` into ``[1.5, 2.0]`` (argparse type)."""
    import argparse

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. 1.5,2") from None


def byte_size(text: str) -> int:
    """'64K', '512M', '1G' or plain bytes -> bytes (powers of 1024; argparse type)."""
    import argparse

    t = text.strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size such as 1K, 256M or 1G") from None


def byte_sizes(text: str) -> list[int]:
    """Parse ``"16M,64M"`` into bytes (argparse type)."""
    return [byte_size(x) for x in text.split(",") if x.strip()]


#: The value types a flag table names (``add_flags``); str takes the text as given.
FLAG_TYPES = {"str": None, "int": int, "float": float, "ints": csv_ints, "strs": csv_strs, "floats": csv_floats}
FLAG_TYPES |= {"size": byte_size, "sizes": byte_sizes}


def add_flags(p, table: str) -> None:
    """The plain flags of a command from a table, one per line ``--name TYPE help`` (TYPE a key of
    ``FLAG_TYPES``); a line indented deeper than the flags continues the help above it. Each flag's
    value is None when not given, so a config file's value or the command's default stands."""
    lines = [ln for ln in table.splitlines() if ln.strip()]
    margin = min(len(ln) - len(ln.lstrip()) for ln in lines)
    rows: list[list[str]] = []
    for ln in lines:
        if len(ln) - len(ln.lstrip()) > margin:
            rows[-1][2] += " " + " ".join(ln.split())
        else:
            flag, kind, *help = ln.split()
            rows.append([flag, kind, " ".join(help)])
    for flag, kind, help in rows:
        if kind not in FLAG_TYPES:
            raise ValueError(f"flag table: {flag} has type {kind!r}; known types are {', '.join(FLAG_TYPES)}")
        p.add_argument(flag, type=FLAG_TYPES[kind], help=help)


def add_json_flag(p, what: str = "the printed table(s)") -> None:
    """``--json PATH``: ``what`` as JSON; ``-`` prints it on stdout and nothing else there."""
    p.add_argument(
        "--json", metavar="PATH", help=f"write {what} as JSON to PATH ('-' = stdout, and nothing else on stdout)"
    )


def add_out_flag(p, what: str, metavar: str = "PATH", required: bool = False) -> None:
    """``-o/--out PATH``: where the command's output goes."""
    p.add_argument("-o", "--out", metavar=metavar, required=required, help=what)


def add_batch_flag(p, many: bool = False, default: str = "1") -> None:
    """``--batch``: sequences per rank per step (a comma list where the command takes several)."""
    p.add_argument(
        "--batch",
        type=csv_ints if many else int,
        help=f"{BATCH_HELP}{(' (comma list)' if many else '')} (default {default})",
    )


def add_switch(p, flag: str, help: str) -> None:
    """An on/off flag: True when given, else None (so a config file's value stands)."""
    p.add_argument(flag, action="store_const", const=True, default=None, help=help)


def add_file_flag(p, flag: str, help: str, many: bool = False) -> None:
    """A flag naming one input FILE (``many``: one or more)."""
    p.add_argument(flag, nargs="+" if many else None, metavar="FILE", help=help)


def add_seed_flag(p, what: str = "the step order") -> None:
    """``--seed``: the one seed flag (default 0), saying what it seeds."""
    p.add_argument("--seed", type=int, help=f"seed of {what} (default 0)")


def add_output_flags(p, json_what: str, out_what: str | None = "write the same JSON document to this file") -> None:
    """The flags every command that produces results takes: ``--json``, ``-o`` (unless None), ``--config``."""
    from dodoco.config import add_config_flag

    add_json_flag(p, json_what)
    if out_what:
        add_out_flag(p, out_what)
    add_config_flag(p)


def load_config(cls, args, out_is_file: bool = True, **overrides):
    """``cls.from_args(args)``, its ``--json`` file (and ``-o`` when it names a file, not a folder the
    command makes) checked before any work, one line each."""
    cfg = cls.from_args(args, **overrides)
    check_output_file(getattr(cfg, "json", None))
    if out_is_file:
        check_output_file(getattr(cfg, "out", None), "--out")
    return cfg


def check_output_file(path, flag: str = "--json") -> None:
    """Refuse an output file whose folder does not exist, that is a folder, or that exists and is not
    what DODOCO writes there (a JSON document, or the traffic CSV): DODOCO did not write such a file and
    never replaces it. One line, before any work. A file DODOCO could have written is replaced (a rerun)."""
    from pathlib import Path

    from dodoco.errors import DodocoError

    if path in (None, "-"):
        return
    p = Path(path)
    if p.is_dir():
        raise DodocoError(f"{flag} {p} is a folder: give a file name, e.g. {p / 'out.json'}")
    if not p.parent.is_dir():
        raise DodocoError(f"{flag} {p}: the folder {p.parent} does not exist: create it first or choose another path")
    if p.exists() and not _dodoco_output(p):
        raise DodocoError(
            f"{flag} {p} exists and is not a JSON document (nor DODOCO's traffic CSV), so DODOCO did not write it "
            "and will not replace it: choose another path or move that file away"
        )


def _dodoco_output(p) -> bool:
    """A regular file that opens as DODOCO's outputs do: UTF-8 text (no NUL) that starts a JSON object or
    array, or the traffic CSV's header (never reads a FIFO or a device). Binary data fails the UTF-8
    check even where its first byte happens to be '{' or '['."""
    import codecs

    from dodoco.simulate.traffic_export import CSV_HEADER

    if not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(4096)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut last character is fine
    except UnicodeDecodeError:
        return False
    text = text.lstrip()
    return "\0" not in text and (text[:1] in ("{", "[") or text.startswith(CSV_HEADER))


def show(rows: list[dict], title: str, json_path=None, *, columns=None, keep=(), labels=()) -> None:
    """Print a table on stdout (nothing when the JSON goes to stdout): ``dodoco.report.tables.print_table``."""
    from dodoco.report.tables import print_table

    if json_path != "-":
        print_table(rows, title, columns, keep=keep, labels=labels)


def say(text: str, json_path=None, bullet: str = "") -> None:
    """A result sentence on stdout, wrapped at spaces on a terminal (nothing when JSON goes to stdout)."""
    from dodoco.report.tables import print_text

    if json_path != "-":
        print_text(text, bullet=bullet)


def note(text: str, prefix: str = "note: ") -> None:
    """A diagnostic on stderr, wrapped at spaces on a terminal."""
    from dodoco.report.tables import print_text

    print_text(prefix + text, stderr=True)


def write_doc(doc, json_path=None, out=None) -> None:
    """The JSON document to ``--json`` (``-``: stdout) and to ``-o`` (files written atomically)."""
    from pathlib import Path

    from dodoco.report.tables import to_json
    from dodoco.store.atomic import write_bytes

    for path in (json_path, out):
        if path == "-":
            print(to_json(doc))
        elif path:
            write_bytes(Path(path), to_json(doc).encode())


def nothing_to_do(why: str) -> int:
    """One line on stderr, and the exit status ``NOTHING_TO_DO``."""
    note(why, "nothing to do: ")
    return NOTHING_TO_DO


def emit(rows: list[dict], title: str, *, json_path=None, columns=None, keep=(), labels=()) -> None:
    """A command's one table: printed (unless ``--json -``) and written as JSON to ``json_path``."""
    check_output_file(json_path)
    show(rows, title, json_path, columns=columns, keep=keep, labels=labels)
    write_doc(rows, json_path)
