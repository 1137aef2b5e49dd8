"""The ``dodoco`` command: a thin shell over the Python API.

Each subcommand lives in ``dodoco/commands/<name>.py`` with ``register(subparsers)`` adding its parser
(and setting ``func``). User mistakes (``DodocoError``) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from dodoco.errors import DodocoError

COMMANDS = ("observe", "analyze", "findings", "report", "replay", "calibrate", "simulate", "compute", "recommend",
            "import_", "export", "zoo", "ls", "validate", "demo")


def build_parser() -> argparse.ArgumentParser:
    import dodoco

    parser = argparse.ArgumentParser(prog="dodoco", description=(
        "Observe how MoE models route tokens, and what that routing costs the AlltoAll dispatch of "
        "expert parallelism."))
    parser.add_argument("--version", action="version", version=f"dodoco {dodoco.__version__}")
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


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except DodocoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume; finished work is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
