"""dodoco export FORMAT RUN... -o FILE: hand a run's routing to another tool (dodoco.simulate.export_api)."""

from __future__ import annotations

from dodoco.commands import add_flags, add_file_flag, add_batch_flag, add_json_flag, add_seed_flag

__all__ = ["register", "run"]


def register(sub) -> None:
    from dodoco.config import add_config_flag
    from dodoco.simulate.export_api import FORMATS

    p = sub.add_parser("export", help="export runs for other tools (neusim, traffic, llmservingsim)")
    p.add_argument("format", help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()))
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="file to write (traffic: .json or .csv)")
    add_flags(
        p,
        """
        --ep              int   EP degree the export is derived at (default: the largest of 4, 8, 16, 32 below E whose
                                step fits the run)
        --eps             ints  neusim: EP degrees listed under by_ep (default 4,8,16,32 and powers of two up to E)
        --regime          str   neusim: prefill, decode (needs token traces) or both where traces exist (default)
        --tokens-per-pass float neusim, window-aggregate imports: tokens of one forward pass (T; otherwise refused)
        --hidden          int   traffic: hidden size H (default 2048)
        --dtype           str   traffic: dispatched element type (default bf16)
        --placement       str   traffic: contiguous (default), round_robin, eplb
        --max-steps       int   traffic: steps per run (default all)
        --gpu             str   neusim: GPU of the expert-compute check (default h100)
        --kernel          str   neusim: expert kernel of the compute check (default loop: NeuSim times each expert as
                                its own matmul)
        --shape           str   neusim: expert shape (e.g. deepseek-v3; default: the run's model)
    """,
    )
    add_batch_flag(p)
    add_seed_flag(p)
    add_file_flag(
        p, "--compute-calibration", "neusim: expert-compute calibration (default: the one DODOCO ships for --gpu)"
    )
    add_json_flag(p, "the printed summary table")
    add_config_flag(p)
    p.set_defaults(func=run)


#: Per format, the columns a narrow terminal keeps (identifiers and the numbers the export is for).
KEEP = {
    "neusim": ["model", "condition", "regime", "ep", "measured_f", "measured_W", "effective_f", "effective_W"],
    "traffic": ["model", "condition", "ranks", "matrices"],
    "llmservingsim": ["tokens", "mean_distinct_experts"],
}


def run(args) -> int:
    from dodoco.commands import emit, load_config, note
    from dodoco.simulate.export_api import ExportConfig, export

    cfg = load_config(ExportConfig, args)
    res = export(cfg)
    note(str(res.path), "wrote ")
    emit(res.rows, res.title, json_path=args.json, keep=KEEP.get(cfg.format, ()))
    return 0
