"""dodoco simulate: predicted dispatch and MoE-layer time at each EP degree on a described cluster."""

from dodoco.commands import csv_ints, csv_strs


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("simulate", help="predict dispatch and MoE-layer time for EP 8..256 on a cluster")
    p.add_argument("runs", nargs="*", default=None, help="run directories, or folders holding them")
    p.add_argument("--condition", type=csv_strs, default=None, help="conditions to simulate (default all)")
    p.add_argument("--cluster", default=None, help="preset (dgx-h100, dgx-h200; default dgx-h200) or a TOML file")
    p.add_argument("--ep", type=csv_ints, default=None, help="EP degrees (default 8,16,32,64,128,256)")
    p.add_argument("--batch", type=int, default=None, help="sequences per rank per step B (default 1)")
    p.add_argument("--hidden", type=int, default=None, help="hidden size H (default 2048)")
    p.add_argument("--dtype", default=None, help="dispatched element type (default bf16)")
    p.add_argument("--expert-width", type=int, default=None, help="expert intermediate size I (default 768)")
    p.add_argument("--calibration", nargs="+", default=None, metavar="FILE",
                   help="a calibration JSON (bench/bench_simulate.py) or replay results to fit on (default: the "
                        "calibration shipped with the preset)")
    p.add_argument("--uncalibrated", action="store_const", const=True, default=None,
                   help="use the cluster's nominal numbers even where a calibration ships")
    p.add_argument("--dispatcher", type=csv_strs, default=None,
                   help="dispatchers to predict (default: every one the calibration holds)")
    p.add_argument("--gpu", default=None, help="GPU of the expert compute model (default: the cluster's, e.g. h200)")
    p.add_argument("--kernel", default=None, help="expert kernel: grouped_mm (default) or loop")
    p.add_argument("--compute-calibration", default=None, metavar="FILE",
                   help="expert-compute calibration (default: the one DODOCO ships for the GPU)")
    p.add_argument("--shape", default=None, help="named expert shape (e.g. deepseek-v3); else --hidden/--expert-width")
    p.add_argument("--placement", default=None, help="contiguous (default), round_robin, eplb")
    p.add_argument("--mitigations", action="store_const", const=True, default=None,
                   help="also judge EPLB, replication and capacity factors in layer milliseconds")
    p.add_argument("--max-steps", type=int, default=None, help="steps per EP degree (default 8)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", default=None, metavar="PATH", help="write the table as JSON ('-' = stdout)")
    p.add_argument("-o", "--out", default=None, metavar="FILE",
                   help="write the whole result (rows, calibration, validation, notes) as JSON")
    add_config_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from dodoco.commands import check_output_file, emit
    from dodoco.simulate.api import SimulateConfig, simulate
    from dodoco.store.atomic import write_json

    check_output_file(args.json)  # before any table is printed
    check_output_file(args.out, "--out")
    args.runs = tuple(args.runs) or None
    res = simulate(SimulateConfig.from_args(args))
    if res.validation and args.json != "-":
        emit(res.validation, "model error on held-out routing replays (median / p90 absolute %)")
    if not res.rows and not res.skipped:
        print(f"calibration: {res.calibration['source']}")
        return 0
    for s in res.skipped:
        print(f"skipped EP {s['N']} for {s['model']} {s['condition']}: {s['reason']}")
    if args.out:
        from dodoco.store.atomic import json_safe

        write_json(Path(args.out), json_safe(res.to_dict()))
    emit(res.rows, res.title, json_path=args.json, columns=res.columns)
    if res.mitigations and args.json != "-":
        emit(res.mitigations, "mitigations in layer milliseconds (held-out half; saved against contiguous)",
             columns=["model", "condition", "N", "mitigation", "recv_skew", "compute_ms", "layer_ms", "saved_ms",
                      "saved_share", "dropped_share"])
    if args.json != "-":
        for n in res.notes:
            print(f"note: {n}")
    return 0
