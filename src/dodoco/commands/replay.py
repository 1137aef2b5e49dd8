"""dodoco replay: a run's routing through real MoE dispatchers on N ranks (torchrun), side by side."""

from dodoco.commands import add_flags, add_batch_flag, add_json_flag, add_out_flag, add_seed_flag
from dodoco.commands import add_file_flag
from dodoco.replay.results import SUMMARY_COLUMNS


def _case_flags(p) -> None:
    """What is replayed: runs, conditions, dispatchers, rows, placement, layers, steps."""
    p.add_argument("runs", nargs="*", help="run directories, or a folder holding the real and mock runs")
    add_flags(
        p,
        """
        --condition  str  the real condition (default: the only non-mock run)
        --mock       str  mock condition beside it (default: first mock-* run; 'none')
        --dispatcher strs nccl (default), megatron, megatron-allgather, nvshmem, nvshmem-1d, deepep, or 'all'; a comma
                          list runs each on the same cases
        --hidden     int  row width H (default 2048, Qwen3-30B-A3B; 7168 DeepSeek-V3)
        --dtype      str  row element type: bf16 (default), fp16, fp32, fp8
        --backend    str  nccl (GPUs, default) or gloo (CPU dry run)
        --nproc      int  ranks to start when not under torchrun (default: GPUs here for nccl, 2 for gloo)
        --placement  str  contiguous (default), round_robin, eplb (fitted on half, other half replayed)
        --layers     ints MoE layer indices (default all)
        --max-steps  int  replay only the first steps
    """,
    )
    add_batch_flag(p)


def _grid_flags(p) -> None:
    """Synthetic controls, the calibration grid, timing, the sweep and the check."""
    add_flags(
        p,
        """
        --skew          floats synthetic receiver-skew controls, e.g. 1.1,1.5,2
        --skew-patterns strs   hot-receiver (default), hot-pair, or both: hot-receiver,hot-pair
        --grid-sizes    sizes  calibration grid per-rank sizes, e.g. 16M,64M
        --grid-skews    floats calibration grid receiver skews (default 1)
        --grid-patterns strs   calibration grid patterns (default hot-receiver,hot-pair; also uniform)
        --grid-experts  int    experts E of the grid's routing (256)
        --grid-topk     int    experts per token K of the grid's routing (8)
        --iters         int    timed iterations per case and dispatcher (default 30)
        --warmup        int    untimed iterations first (default 5)
        --buffers       int    minimum rotating buffer sets (default 2; more below 2 x L2)
        --sweep-min     size   smallest sweep size per rank (1K)
        --sweep-max     size   largest sweep size per rank (512M)
    """,
    )
    p.add_argument("--sweep", action="store_true", default=None, help="also the raw all_to_all_single size sweep")
    p.add_argument("--no-check", action="store_false", dest="check", default=None, help="skip the received-rows check")
    p.add_argument(
        "--link-gbps", type=float, help="per-direction link GB/s for the floor (default 450, NVLink4 nominal)"
    )
    p.add_argument("--timeout", type=float, dest="timeout_s", help="seconds without progress before ranks stop")
    add_seed_flag(p)


def _layer_flags(p) -> None:
    """The whole-layer mode (--layer) and its experts."""
    p.add_argument(
        "--layer",
        action="store_true",
        default=None,
        help="the whole MoE layer: each rank's experts on its received tokens between dispatch and combine",
    )
    p.add_argument(
        "--kernel",
        help="experts of --layer: grouped_mm (default, torch._grouped_mm) or megatron (Megatron-Core's SequentialMLP)",
    )
    p.add_argument(
        "--shape",
        dest="expert_shape",
        help="experts' shape of --layer, e.g. deepseek-v3 (sets --hidden); "
        "default: --expert-width, else the run's model",
    )
    p.add_argument("--expert-width", type=int, help="expert width I of --layer (with --hidden H)")
    add_file_flag(p, "--calibration", "--layer: simulate's prediction of each row from this calibration and the preset")


def add_arguments(p) -> None:
    from dodoco.config import add_config_flag

    _case_flags(p)
    _grid_flags(p)
    _layer_flags(p)
    p.add_argument("--note", help="free text stored in the result")
    add_out_flag(p, "write the full result JSON (schema dodoco.replay/2) here")
    add_json_flag(p, "the printed tables and notes")
    add_config_flag(p)


def config_from_args(args):
    """ReplayConfig from the flags; a gloo dry run takes the small DRY_RUN values the user did not set."""
    from dodoco.replay.config import DRY_RUN, ReplayConfig

    from dodoco.config import read_toml

    if getattr(args, "expert_shape", None) and getattr(args, "hidden", None) is None:
        from dodoco.compute.shapes import resolve_shape

        args.hidden = resolve_shape(args.expert_shape)[0].hidden  # --shape names the rows' width too
    cfg = ReplayConfig.from_args(args)
    if cfg.backend != "gloo":
        return cfg
    given = {k for k in DRY_RUN if getattr(args, k, None) is not None}
    given |= set(read_toml(args.config)) if getattr(args, "config", None) else set()
    return ReplayConfig.from_args(args, **{k: v for k, v in DRY_RUN.items() if k not in given})


SUMMARY = [c for c in SUMMARY_COLUMNS if c not in ("N", "per_rank_bytes", "receiver_skew")]
SUMMARY_KEEP = ["dispatcher", "condition", "dispatch_ms", "vs_balanced", "check", "measured_on"]
LAYER_SUMMARY = [
    "dispatcher",
    "condition",
    "kind",
    "cases",
    "MB_per_rank",
    "recv_skew",
    "layer_ms",
    "dispatch_ms",
    "experts_ms",
    "experts_mean_rank_ms",
    "combine_ms",
    "vs_balanced",
]
LAYER_KEEP = ["dispatcher", "condition", "layer_ms", "experts_ms"]


# the replay's optional tables: (key, title, columns kept)
_OPTIONAL_TABLES = (
    ("not_measured", "not measured", ["dispatcher", "reason"]),
    ("overhead", "harness overhead: each dispatcher in the harness vs a bare loop, same buffers",
     ["dispatcher", "overhead_pct_median", "overhead_pct_max"]),
    ("sweep", "raw all_to_all_single, uniform splits (nccl-tests busbw convention)",
     ["bytes_per_rank", "median_ms", "busbw_GBps"]),
)  # fmt: skip


def print_result(result: dict, json_path=None) -> None:
    """The replay's tables (summary, not measured, harness overhead, sweep) and its caveats."""
    from dodoco.commands import check_output_file, say, show, write_doc
    from dodoco.replay.results import printed_tables

    check_output_file(json_path)
    doc = printed_tables(result)
    if result.get("mode") == "layer":  # the whole layer: its summary, with the experts' stage
        doc["title"] = doc["title"].replace("dispatch replay", "whole-layer replay") + (
            f"; experts: {result['layer']['kernel']}, {result['layer']['shape']}"
        )
        doc["summary"] = result["layer_summary"]
        show(doc["summary"], doc["title"], json_path, columns=LAYER_SUMMARY, keep=LAYER_KEEP)
    else:
        show(doc["summary"], doc["title"], json_path, columns=SUMMARY, keep=SUMMARY_KEEP, labels=["measured_on"])
    for key, title, keep in _OPTIONAL_TABLES:
        if doc[key]:
            show(doc[key], title, json_path, keep=keep)
    for n in doc["notes"]:
        say(n, json_path, bullet="note: ")
    write_doc(doc, json_path)


def register(sub) -> None:
    p = sub.add_parser("replay", help="time MoE dispatchers (NCCL, Megatron, NVSHMEM, DeepEP) on a run's routing")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.replay.launch import default_nproc, launch, preflight, under_torchrun, worker_run

    cfg = config_from_args(args)
    if under_torchrun():  # `dodoco replay` started by the user's own torchrun: be one rank
        result = worker_run(cfg)
    else:
        nproc = cfg.nproc or default_nproc(cfg.backend)
        preflight(cfg, nproc)
        result = launch(cfg, nproc)
    if result is not None:
        print_result(result, json_path=cfg.json)
        if cfg.layer and cfg.calibration and cfg.json != "-":
            print_prediction(result, cfg)
    return 0


def print_prediction(result: dict, cfg) -> None:
    """The layer replay beside simulate's whole-layer prediction, same-machine calibration and preset."""
    from dodoco.commands import emit, note
    from dodoco.simulate.layer_compare import compare_rows, predictors

    preds = predictors(cfg.calibration, allow_dry_run=cfg.backend == "gloo")
    rows = []
    for r in compare_rows([result], preds):
        own, pre = r["same machine"], r["preset"]
        rows.append(
            {
                "dispatcher": r["dispatcher"],
                "condition": r["condition"],
                "MB_per_rank": r["measured"]["MB_per_rank"],
                "measured_ms": r["measured"]["layer_ms"],
                "predicted_ms": own.get("layer_ms", float("nan")),
                "error": own.get("error", float("nan")),
                "preset_ms": pre.get("layer_ms", float("nan")),
                "preset_error": pre.get("error", float("nan")),
            }
        )
    emit(
        rows,
        "whole layer, measured vs predicted (dodoco simulate): this machine's calibration, and the preset's",
        keep=["dispatcher", "measured_ms", "predicted_ms", "error"],
    )
    for name, (_, _, label) in preds.items():
        note(f"{name}: {label}", prefix="")
