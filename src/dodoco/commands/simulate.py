"""dodoco simulate: predicted dispatch and MoE-layer time at each EP degree on a described cluster."""

from dodoco.commands import (
    add_flags,
    add_file_flag,
    add_switch,
    add_batch_flag,
    add_json_flag,
    add_out_flag,
    add_seed_flag,
    csv_strs,
)

#: Provenance columns of the rows besides ``*_label`` ones and a ``provenance`` dict (the terms each row used).
LABELS = ["calibration", "nvlink", "nic", "compute_source"]
KEEP = ["model", "condition", "dispatcher", "N", "dispatch_ms", "layer_ms"]


def _compute_flags(p) -> None:
    """The expert compute of the whole layer: GPU, kernel, calibration, shape."""
    add_flags(
        p,
        """
        --gpu    str GPU of the expert compute model (default: the cluster's, e.g. h200)
        --kernel str expert kernel: grouped_mm (default) or loop
        --act    str expert activation with --hidden/--expert-width: swiglu (default) or relu2 (Nemotron-H)
    """,
    )
    add_file_flag(p, "--compute-calibration", "expert-compute calibration (default: the one DODOCO ships for the GPU)")
    p.add_argument(
        "--shape", help="named expert shape (e.g. deepseek-v3); else --hidden/--expert-width; else each run's own"
    )


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("simulate", help="predict dispatch and MoE-layer time for EP 8..256 on a cluster")
    p.add_argument("runs", nargs="*", help="run directories, or folders holding them")
    add_flags(
        p,
        """
        --condition    strs conditions to simulate (default all)
        --cluster      str  preset (dgx-h100, dgx-h200; default dgx-h200) or a TOML file
        --ep           ints EP degrees (default 8,16,32,64,128,256)
        --hidden       int  hidden size H (default: each run's own, else 2048)
        --dtype        str  dispatched element type (default bf16)
        --expert-width int  expert intermediate size I (with --hidden; default: each run's own, else 768)
    """,
    )
    add_batch_flag(p)
    add_file_flag(
        p,
        "--calibration",
        "a calibration JSON (bench/bench_simulate.py) or replay results to fit on (default: the calibration shipped with the preset)",
        many=True,
    )
    add_switch(p, "--uncalibrated", "use the cluster's nominal numbers even where a calibration ships")
    p.add_argument(
        "--dispatcher", type=csv_strs, help="dispatchers to predict (default: every one the calibration holds)"
    )
    _compute_flags(p)
    p.add_argument("--placement", help="contiguous (default), round_robin, eplb")
    add_switch(p, "--mitigations", "also judge EPLB, replication and capacity factors in layer milliseconds")
    p.add_argument("--max-steps", type=int, help="steps per EP degree (default 8)")
    add_seed_flag(p)
    add_json_flag(p, "the predicted rows (a list; attachable to a report)")
    add_out_flag(
        p,
        "write the whole result (schema dodoco.simulate/1: rows, calibration, validation, notes) as "
        "JSON; attach it to a report",
        metavar="FILE",
    )
    add_config_flag(p)
    p.set_defaults(func=run)


def label_columns(rows: list[dict], columns: list[str]) -> list[str]:
    """``columns`` and, after them, every provenance column the rows carry."""
    extra = [
        k
        for k in dict.fromkeys(k for r in rows for k in r)
        if k not in columns and (k in LABELS or k.endswith("_label") or k == "provenance")
    ]
    return list(columns) + extra


def run(args) -> int:
    from dodoco.commands import check_output_file, emit, note, nothing_to_do, say, show, write_doc
    from dodoco.simulate.api import SimulateConfig, simulate

    check_output_file(args.json)  # before any table is printed
    check_output_file(args.out, "--out")
    args.runs = tuple(args.runs) or None
    res = simulate(SimulateConfig.from_args(args))
    if res.validation:
        show(res.validation, "model error on held-out routing replays (median / p90 absolute %)", args.json)
    if not args.runs:  # only --calibration: the calibration checked and its validation shown
        say(f"calibration: {res.calibration['source']}", args.json)
        write_doc(res.to_dict(), args.json, args.out)
        return 0
    for s in res.skipped:
        note(f"skipped EP {s['N']} for {s['model']} {s['condition']}: {s['reason']}")
    write_doc(res.to_dict(), None, args.out)
    if not res.rows:
        write_doc([], args.json)
        return nothing_to_do("no EP degree could be simulated (each is skipped above, with why)")
    emit(
        res.rows, res.title, json_path=args.json, columns=label_columns(res.rows, res.columns), keep=KEEP, labels=LABELS
    )
    if res.mitigations:
        show(
            res.mitigations,
            "mitigations in layer milliseconds (held-out half; saved against contiguous)",
            args.json,
            keep=["model", "N", "mitigation", "layer_ms", "saved_ms"],
        )
    for n in res.notes:
        say(n, args.json, bullet="note: ")
    return 0
