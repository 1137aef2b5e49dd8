"""dodoco calibrate: this machine's dispatch and expert-compute calibration, one file with its host identity."""

from dodoco.commands import add_flags, add_switch


def register(sub) -> None:
    from dodoco.commands import add_output_flags

    p = sub.add_parser("calibrate", help="calibrate dispatch and expert compute on this machine's GPUs (one file)")
    _flags(p)
    shown = "the fitted dispatch forms and the expert-compute models"
    add_output_flags(p, shown, out_what="the calibration file (dodoco-calibration.json)")
    p.set_defaults(func=run)


def _flags(p) -> None:
    """The machine, the dispatch grid and the expert-compute grid of a calibration."""
    p.add_argument("--work", metavar="DIR", help="finished parts, kept for resuming (FILE.parts)")
    p.add_argument("--machine", help="label of this machine (default: GPU and count, e.g. h200-x4)")
    add_switch(
        p, "--dry-run", "the whole path on gloo (CPU) at toy sizes; the file says DRY RUN and simulate refuses it"
    )
    add_flags(
        p,
        """
        --backend    str    nccl (GPUs, default); gloo only with --dry-run
        --nproc      int    GPUs to use (default: every visible one)
        --ranks      ints   EP degrees to calibrate, e.g. 2,4 (default: --nproc)
        --dispatcher strs   dispatchers (default all that run here)
        --sizes-mb   ints   per-rank sizes of the grid in MiB (default 16,32,64,128,256,512)
        --skews      floats receiver skews of the grid (default 1,1.1,1.25,1.5,2,3)
        --patterns   strs   grid patterns (default hot-receiver,hot-pair)
        --hidden     int    row width H of the grid (default 7168)
        --iters      int    timed iterations per grid case (default 10)
        --warmup     int    untimed iterations first (default 3)
        --kernel     strs   expert kernels to calibrate (default grouped_mm)
        --shapes     strs   expert shapes of the compute grid (default the paper's four: deepseek-v3,
                            deepseek-v2-lite, qwen3-30b-a3b, qwen3.5-35b-a3b)
    """,
    )
    p.add_argument(
        "--no-compute",
        action="store_const",
        const=False,
        default=None,
        dest="compute",
        help="skip the expert-compute calibration",
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
