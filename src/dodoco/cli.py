"""The ``dodoco`` command: a thin shell over the Python API, and its one error boundary.

Each subcommand lives in ``dodoco/commands/<name>.py`` with ``register(subparsers)`` adding its parser
(and setting ``func``). Exit codes: 0 results, 1 an error of the data or the environment (a damaged or
inconsistent run or input: ``DataError``; a full disk, a read-only folder, no permission, any other
OSError; out of memory; input nested too deeply; text that is not UTF-8; invalid JSON), 2 a usage
mistake (``DodocoError``: a flag, a value or a path the user gave; argparse's errors), 3 nothing to do
(a command's own result), 130 interrupted. Every diagnostic is one ``error: ...`` line on stderr
naming the value or file and the fix; ``dodoco --debug ...`` (before or after the subcommand) also
prints the traceback. Anything else escaping a command is a bug and keeps its traceback.

Before a command runs, no path it was given may be a FIFO, a device or a socket (nothing DODOCO
reads or writes is one, and opening one could hang). stdout and stderr never fail on file names that
are not valid UTF-8 (they are printed with backslash escapes).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import stat
import sys
import traceback

from dodoco.errors import DodocoError

COMMANDS = (
    "observe",
    "analyze",
    "findings",
    "report",
    "replay",
    "calibrate",
    "simulate",
    "compute",
    "recommend",
    "import_",
    "export",
    "zoo",
    "ls",
    "validate",
    "demo",
)
DEBUG = "--debug"


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (subcommand parsers are made of the same class)."""

    def error(self, message: str):
        print(f"error: {message} (`{self.prog} --help` lists the flags)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    import dodoco

    parser = _Parser(
        prog="dodoco",
        description=(
            "Observe how MoE models route tokens, and what that routing costs the AlltoAll dispatch of "
            "expert parallelism."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dodoco {dodoco.__version__}")
    parser.add_argument(DEBUG, action="store_true", help="show the traceback of an error (also after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"dodoco.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dodoco.commands.{name}":
                continue  # command not part of this build
            raise
        module.register(sub)
    return parser


_OS_FIX = {
    errno.ENOSPC: "the disk is full: free space, or choose an output on another disk",
    errno.EDQUOT: "the disk quota is exhausted: free space, or choose an output on another disk",
    errno.EROFS: "the file system is read-only: choose an output folder you can write",
    errno.EACCES: "permission denied: fix the permissions, or choose another path",
    errno.EPERM: "operation not permitted: fix the permissions, or choose another path",
    errno.ENOENT: "it does not exist: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder where a file is needed: give a file",
    errno.ELOOP: "it is a symbolic link DODOCO will not follow (or a loop of them): give the real path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and retry",
    errno.ENFILE: "too many open files on this machine: retry later",
    errno.EIO: "the device reported an I/O error: check the disk",
}


def _culprit(exc: BaseException) -> str | None:
    """The file an exception without a file name concerns: the innermost frame's local naming an
    existing file (``path``, ``p``, ``f``, ``file``, ``filename``), as best effort."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        for name in ("path", "p", "f", "file", "filename"):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and len(os.fspath(value)) < 4096 and "\0" not in str(value):
                if os.path.isfile(value):
                    found = os.fspath(value)
                    break
        tb = tb.tb_next
    return found


def _describe(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one line) for the errors of the data and the environment; None for a bug."""
    if isinstance(exc, DodocoError):
        return exc.exit_code, str(exc)
    where = _culprit(exc)
    at = f" in {where}" if where else ""
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else where
        target = f"{name}" + (f" -> {exc.filename2}" if exc.filename2 else "") if name else "a file"
        fix = _OS_FIX.get(exc.errno, "check the path and retry")
        return 1, f"cannot access {target} ({exc.strerror or exc}): {fix}"
    if isinstance(exc, MemoryError):
        return (
            1,
            f"out of memory{at}: ask for less (fewer sequences, experts or EP degrees), or use a machine with more",
        )
    if isinstance(exc, RecursionError):
        return 1, f"input nested too deeply{at} (corrupt or hostile data?): give the file DODOCO or the engine wrote"
    if isinstance(exc, UnicodeError):
        return 1, f"text that is not valid UTF-8{at} ({str(exc)[:120]}): give a text file in UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return 1, f"invalid JSON{at} ({exc.msg} at line {exc.lineno} column {exc.colno}): give the file DODOCO wrote"
    return None


def _special_paths(args: argparse.Namespace) -> None:
    """Refuse a FIFO, device or socket given as any path (module docstring); one line naming it."""
    from dodoco.paths import describe_mode

    for key, value in vars(args).items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if not isinstance(v, str) or not v or "\0" in v:
                continue
            try:
                mode = os.stat(v).st_mode
            except (OSError, ValueError):
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DodocoError(
                    f"{v} is {describe_mode(mode)}: DODOCO reads and writes regular files and folders "
                    f"only; give one (--{key.replace('_', '-')})"
                )


def _tolerant_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    _tolerant_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG in argv
    argv = [a for a in argv if a != DEBUG]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        _special_paths(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume; finished work is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dodoco ... | head`: the reader left; nothing more to say to it
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 (the one boundary: data and environment faults become one line)
        described = _describe(exc)
        if described is None:
            raise
        if debug:
            traceback.print_exc()
        code, line = described
        print(f"error: {' '.join(line.split())}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
