"""dodoco export FORMAT RUN... -o FILE: hand a run's routing to another tool (dodoco.simulate.export_api)."""

from __future__ import annotations

from dodoco.commands import csv_ints

__all__ = ["register", "run"]


def register(sub) -> None:
    from dodoco.config import add_config_flag
    from dodoco.simulate.export_api import FORMATS

    p = sub.add_parser("export", help="export runs for other tools (neusim, traffic, llmservingsim)")
    p.add_argument("format", help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()))
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="file to write (traffic: .json or .csv)")
    p.add_argument("--ep", type=int, default=None, help="EP degree the export is derived at (default: the "
                   "largest of 4, 8, 16, 32 below E whose step fits the run)")
    p.add_argument("--eps", type=csv_ints, default=None,
                   help="neusim: EP degrees listed under by_ep (default 4,8,16,32 and powers of two up to E)")
    p.add_argument("--batch", type=int, default=None, help="sequences per rank per step B (default 1)")
    p.add_argument("--regime", default=None,
                   help="neusim: prefill, decode (needs token traces) or both where traces exist (default)")
    p.add_argument("--tokens-per-pass", type=float, default=None,
                   help="neusim, window-aggregate imports: tokens of one forward pass (T; otherwise refused)")
    p.add_argument("--hidden", type=int, default=None, help="traffic: hidden size H (default 2048)")
    p.add_argument("--dtype", default=None, help="traffic: dispatched element type (default bf16)")
    p.add_argument("--placement", default=None, help="traffic: contiguous (default), round_robin, eplb")
    p.add_argument("--max-steps", type=int, default=None, help="traffic: steps per run (default all)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the printed table as JSON ('-' = stdout)")
    add_config_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import emit
    from dodoco.simulate.export_api import ExportConfig, export

    res = export(ExportConfig.from_args(args))
    if args.json != "-":
        print(f"wrote {res.path}")
    emit(res.rows, res.title, json_path=args.json)
    return 0
