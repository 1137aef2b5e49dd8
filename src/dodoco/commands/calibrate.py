"""dodoco calibrate: this machine's dispatch and expert-compute calibration, one file with its host identity."""

from dodoco.commands import add_switch, csv_ints, csv_strs
from dodoco.commands.replay import _floats  # the one comma-list-of-numbers flag type


def register(sub) -> None:
    from dodoco.commands import add_output_flags

    p = sub.add_parser("calibrate", help="calibrate dispatch and expert compute on this machine's GPUs (one file)")
    _flags(p)
    add_output_flags(
        p,
        "the fitted dispatch forms and the expert-compute models",
        out_what="the calibration file (dodoco-calibration.json)",
    )
    p.set_defaults(func=run)


def _flags(p) -> None:
    """The machine, the dispatch grid and the expert-compute grid of a calibration."""
    p.add_argument("--work", metavar="DIR", help="finished parts, kept for resuming (FILE.parts)")
    p.add_argument("--machine", help="label of this machine (default: GPU and count, e.g. h200-x4)")
    add_switch(
        p, "--dry-run", "the whole path on gloo (CPU) at toy sizes; the file says DRY RUN and simulate refuses it"
    )
    p.add_argument("--backend", help="nccl (GPUs, default); gloo only with --dry-run")
    p.add_argument("--nproc", type=int, help="GPUs to use (default: every visible one)")
    p.add_argument("--ranks", type=csv_ints, help="EP degrees to calibrate, e.g. 2,4 (default: --nproc)")
    p.add_argument("--dispatcher", type=csv_strs, help="dispatchers (default all that run here)")
    p.add_argument("--sizes-mb", type=csv_ints, help="per-rank sizes of the grid in MiB (default 16,32,64,128,256,512)")
    p.add_argument("--skews", type=_floats, help="receiver skews of the grid (default 1,1.1,1.25,1.5,2,3)")
    p.add_argument("--patterns", type=csv_strs, help="grid patterns (default hot-receiver,hot-pair)")
    p.add_argument("--hidden", type=int, help="row width H of the grid (default 7168)")
    p.add_argument("--iters", type=int, help="timed iterations per grid case (default 10)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default 3)")
    p.add_argument(
        "--no-compute",
        action="store_const",
        const=False,
        default=None,
        dest="compute",
        help="skip the expert-compute calibration",
    )
    p.add_argument("--kernel", type=csv_strs, help="expert kernels to calibrate (default grouped_mm)")
    p.add_argument(
        "--shapes",
        type=csv_strs,
        help="expert shapes of the compute grid (default the paper's four: deepseek-v3, deepseek-v2-lite, qwen3-30b-a3b, qwen3.5-35b-a3b)",
    )
    p.add_argument(
        "--timeout", type=float, dest="timeout_s", help="seconds without progress before ranks stop (default 300)"
    )


def run(args) -> int:
    import sys

    from dodoco.calibrate.api import CalibrateConfig, calibrate
    from dodoco.commands import check_output_file, emit, note, say, write_doc
    from dodoco.host import describe

    check_output_file(args.out, "--out")
    check_output_file(args.json)
    if args.dry_run and args.backend is None:
        args.backend = "gloo"
    res = calibrate(CalibrateConfig.from_args(args), echo=lambda line: print(line, file=sys.stderr, flush=True))
    cal = res.calibration
    rows = [
        {
            "dispatcher": f.dispatcher,
            "N": f.N,
            "phase": f.phase,
            "form": f.form,
            "grid_heldout_pct": (f.info.get("selection", {}).get(f.form, {}) or {}).get("grid_heldout_median_pct"),
            "fit_sizes_MB": ",".join(f"{x:g}" for x in f.info.get("fit_sizes_MB", [])),
        }
        for f in cal.fits
    ]
    title = (
        "DRY RUN (gloo on CPU, not a measurement): " if cal.dry_run else ""
    ) + f"dispatch calibration of {describe(cal.host)}"
    compute = [
        {"kernel": k, "form": m.get("form"), **(m.get("held_out") or {})} for k, m in (cal.compute or {}).items()
    ]
    if rows and args.json != "-":
        emit(rows, title, columns=["dispatcher", "N", "phase", "form", "grid_heldout_pct", "fit_sizes_MB"])
    write_doc({"title": title, "dispatch": rows, "compute": compute, "notes": cal.notes}, args.json)
    for k, v in cal.meta.get("dispatchers", {}).items():
        if v["status"] != "calibrated":
            note(f"{k}: {v['status']}: {v['reason']}", prefix="")
    for n in cal.notes:
        say(n, args.json, bullet="note: ")
    for line in res.lines:
        note(line, prefix="")
    return 0
