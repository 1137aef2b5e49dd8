"""``dodoco simulate`` as a function: ``SimulateConfig`` -> ``simulate(cfg)`` -> ``SimulateResult``.

Calibration, in order: ``--calibration FILE...`` (a calibration JSON, or replay results fitted here,
with the validation on their held-out routing), else the calibration shipped beside the preset
(``presets/<cluster>.calibration.json``), else none: the prediction is then uncalibrated (nominal
datasheet bandwidth, naive max model) and its title, rows, JSON and notes say so. ``--uncalibrated``
asks for that explicitly. Every row carries model, run, condition, cluster, dispatcher and the
calibration source, and the terms it used (``nvlink``, ``nic``, ``compute_source``); nominal terms say so.
Expert compute comes from the compute model of the cluster's GPU and the kernel named
(``dodoco.compute``: the calibration shipped for that GPU, ``--compute-calibration FILE``, or another
GPU's, which every output then names).

Shape legend: L MoE layers, E routed experts, N EP ranks, B sequences per rank per step, H hidden size.
"""

from __future__ import annotations


from dataclasses import dataclass, field

from dodoco.config import pick
from dodoco.config import Config
from dodoco.errors import DodocoError

__all__ = ["SCHEMA", "SimulateConfig", "SimulateResult", "resolve_calibration", "simulate"]

SCHEMA = "dodoco.simulate/1"
COLUMNS = [
    "model",
    "condition",
    "dispatcher",
    "N",
    "nodes",
    "MB_per_rank",
    "recv_skew",
    "dispatch_ms",
    "balanced_ms",
    "imbalance_share",
    "hier_ms",
    "combine_ms",
]
LAYER_COLUMNS = ["compute_ms", "compute_straggler_ms", "comm_straggler_ms", "layer_ms", "balanced_layer_ms"]


@dataclass(frozen=True, kw_only=True)
class SimulateConfig(Config):
    """Settings of ``dodoco simulate`` (flags and TOML keys alike)."""

    runs: tuple[str, ...] = ()
    condition: tuple[str, ...] | None = None
    cluster: str = "dgx-h200"
    ep: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    batch: int = 1
    hidden: int | None = None
    dtype: str = "bf16"
    expert_width: int | None = None
    act: str = "swiglu"
    calibration: tuple[str, ...] | None = None
    uncalibrated: bool = False
    dispatcher: tuple[str, ...] | None = None
    gpu: str | None = None
    kernel: str = "grouped_mm"
    compute_calibration: str | None = None
    shape: str | None = None
    mitigations: bool = False
    placement: str = "contiguous"
    max_steps: int = 8
    seed: int = 0
    json: str | None = None
    out: str | None = None

    def __post_init__(self):
        for key in ("batch", "hidden", "expert_width", "max_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise DodocoError(f"--{key.replace('_', '-')} {getattr(self, key)} must be >= 1")
        bad = [n for n in self.ep if n < 1]
        if bad or not self.ep:
            raise DodocoError(f"--ep {list(self.ep)}: give EP degrees >= 1, e.g. --ep 8,16,32")
        if self.expert_width is not None and self.hidden is None:
            raise DodocoError(f"--expert-width {self.expert_width} needs --hidden H too (or name --shape)")
        if self.act != "swiglu" and not (self.hidden and self.expert_width):
            raise DodocoError(
                f"--act {self.act} needs --hidden H and --expert-width I (a named --shape carries its own)"
            )
        if self.calibration and self.uncalibrated:
            raise DodocoError("--calibration and --uncalibrated contradict each other: give one")


@dataclass
class SimulateResult:
    """Rows (one per run, dispatcher and N), their title, what was skipped, the calibration used."""

    title: str
    rows: list
    columns: list
    skipped: list
    calibration: dict
    validation: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    mitigations: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **pick(self, "title calibration notes validation skipped rows mitigations")}


def _is_calibration(path: str) -> bool:
    from dodoco.jsonfile import read_json

    try:
        head, _ = read_json(path, "calibration", "-")
    except DodocoError:
        return False  # load_groups names the problem
    return isinstance(head, dict) and str(head.get("schema", "")).startswith("dodoco.calibration/")


def resolve_calibration(cfg: SimulateConfig, cluster) -> tuple[object, list]:
    """(Calibration or None, validation rows when fitted here from replay results)."""
    from dodoco.simulate.calibration import load_calibration
    from dodoco.simulate.cluster import preset_calibration, presets

    if cfg.uncalibrated:
        return None, []
    if cfg.calibration:
        if len(cfg.calibration) == 1 and _is_calibration(cfg.calibration[0]):
            return load_calibration(cfg.calibration[0]), []
        from dodoco.simulate.fit import calibrate
        from dodoco.simulate.samples import load_groups
        from dodoco.simulate.holdout import validation_rows

        groups, sources = load_groups(cfg.calibration)
        cal, records = calibrate(groups, sources)
        return cal, validation_rows(records, groups)
    return (preset_calibration(cluster.name) if cfg.cluster in presets() else None), []


def _compute(cfg: SimulateConfig, cluster):
    """(ComputeModel, ExpertShape) of the expert compute: the cluster's GPU (or --gpu), the kernel, the shape."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.model import resolve_model
    from dodoco.compute.shapes import resolve_shape

    if cfg.shape:
        shape = resolve_shape(cfg.shape)[0]
    elif cfg.hidden and cfg.expert_width:
        shape = ExpertShape(cfg.hidden, cfg.expert_width, act=cfg.act)
    else:
        shape = None  # each run's own (``run_shape``)
    gpu = cfg.gpu or cluster.gpu or "h200"
    try:
        return resolve_model(gpu, cfg.kernel, cfg.compute_calibration), shape, gpu
    except DodocoError:
        if cfg.compute_calibration or cfg.gpu:
            raise
        return None, shape, gpu  # nothing ships for this kernel: dispatch only, and the notes say why


def _runs(cfg: SimulateConfig) -> list:
    from dodoco.errors import did_you_mean
    from dodoco.store import find_runs

    if not cfg.runs:
        raise DodocoError("name a run directory to simulate (or only --calibration FILE to check the model)")
    runs = find_runs(list(cfg.runs))
    if cfg.condition:
        names = {r.condition for r in runs}
        for c in cfg.condition:
            if c not in names:
                raise did_you_mean("condition", c, names)
        runs = [r for r in runs if r.condition in cfg.condition]
    return runs


def _title(cfg, cluster, cal) -> str:
    from dodoco.ep.placements import PLACEMENTS, check_placements

    held = (
        " fitted on half of the sequences, evaluated on the other half"
        if PLACEMENTS[check_placements(cfg.placement)[0]].fitted
        else ""
    )
    shape = f"H={cfg.hidden or 'per run'} {cfg.dtype}, B={cfg.batch}, {cfg.placement}{held}"
    if cal is None:
        return (
            f"UNCALIBRATED prediction on {cluster.name} ({shape}): nominal datasheet bandwidth and the naive "
            "max model, no measurement behind it"
        )
    return f"predicted dispatch and MoE layer on {cluster.name} ({shape}), calibrated on {cal.describe()}"


def _notes(rows, cal, cluster) -> list[str]:
    notes = ["predictions of the model, not measurements"]
    if cal is None:
        notes.append(
            f"uncalibrated: {cluster.nominal_nvlink()}; no calibration for cluster {cluster.name} "
            "(pass --calibration FILE from `dodoco replay` or bench/bench_dispatch.py)"
        )
    if any(r["nodes"] > 1 for r in rows):
        notes.append(f"EP across nodes uses NIC terms that are {cluster.nominal_nic()}")
    for label in sorted({r["compute_source"] for r in rows if r.get("compute_source")}):
        notes.append(f"expert compute: {label}")
    if any("compute_ms" in r for r in rows):
        notes.append(
            "compute_straggler_ms = busiest rank's experts - the mean rank's of the same step (>= 0; not an even "
            "rank, which can be slower than real routing at small loads: docs/compute.md section 5); "
            "balanced_layer_ms: balanced dispatch + every rank at the mean tokens spread evenly + balanced combine"
        )
    return notes


def _one_run(cfg, r, timer, dispatchers, compute, label: dict) -> tuple[list, list, list]:
    """(rows, skipped, mitigation rows) of one run: ``simulate_ep`` under the run's own step source."""
    from dodoco.defaults import dtype_bytes
    from dodoco.ep.steps import run_source
    from dodoco.simulate.layer import simulate_ep

    model, shape, gpu = compute
    shape, whose = (shape, "") if shape else run_shape(r)
    row_bytes = (cfg.hidden or shape.hidden) * dtype_bytes(cfg.dtype)
    src = run_source(r, cfg.seed)
    out, skip = simulate_ep(
        r.counts,
        cfg.ep,
        cfg.batch,
        timer,
        row_bytes=row_bytes,
        dispatchers=dispatchers,
        compute=(model, shape) if model else None,
        placement=cfg.placement,
        seed=cfg.seed,
        max_steps=cfg.max_steps,
        source=src,
    )
    label = {
        "model": r.model,
        "run": str(r.path),
        "condition": r.condition,
        **label,
        "batch": cfg.batch,
        "source_split": src.source_split,
        "compute_source": f"{model.label(gpu, shape.act)}; {shape.label()}{whose}" if model else "",
    }
    mit = (
        _mitigations(cfg, r, out, timer, (model, shape), row_bytes, dispatchers[0])
        if cfg.mitigations and model is not None
        else []
    )
    skipped = [
        {"model": r.model, "run": str(r.path), "condition": r.condition, "N": n, "reason": why} for n, why in skip
    ]
    return [{**label, **x} for x in out], skipped, mit


def run_shape(run):
    """(ExpertShape, label suffix) of a run when no --shape or --hidden/--expert-width names one: the run's
    own (observe records it; a zoo or tiny model's is the real model it stands for), else nominal
    Qwen3-30B-A3B (2048 x 768, SwiGLU), which the suffix says."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.shapes import shape_of_run

    shape, label = shape_of_run(run)
    if shape is not None:
        return shape, " (of the real model the run stands for)" if "stands for" in label else " (the run's own)"
    nominal = " (nominal Qwen3-30B-A3B: the run records no expert shape; give --shape)"
    return ExpertShape(2048, 768), nominal


def _all_notes(cfg, runs, rows, cal, cluster, host, compute) -> list[str]:
    from dodoco.ep.steps import run_source

    model, _, gpu = compute
    missing = (
        []
        if model
        else [
            f"no expert-compute calibration of kernel {cfg.kernel} ships for {gpu}: dispatch only "
            "(make one with `dodoco calibrate`, pass it with --compute-calibration FILE)"
        ]
    )
    windows = [
        f"{r.path} holds one aggregate window: it is one step, its tokens split evenly over the source ranks "
        "(assumed, not recorded)"
        for r in runs
        if run_source(r, cfg.seed).source_split == "uniform"
    ]
    return host["notes"] + _notes(rows, cal, cluster) + missing + windows


def simulate(cfg: SimulateConfig) -> SimulateResult:
    """Predict dispatch and MoE-layer time per run, dispatcher and EP degree on the cluster."""
    from dodoco.simulate.cluster import AlltoallTimer, load_cluster
    from dodoco.simulate.hostcheck import calibration_compute, host_check

    cluster = load_cluster(cfg.cluster)
    cal, validation = resolve_calibration(cfg, cluster)
    cal_info = {
        "source": cal.describe() if cal is not None else "none: uncalibrated (nominal datasheet numbers)",
        "fits": [f.label() for f in cal.fits] if cal is not None else [],
    }
    host = host_check(cal, cluster)  # whose machine the calibration is, this one or not (simulate/hostcheck.py)
    cal_info.update(host=cal.host if cal is not None else {}, host_check=host["host_check"])
    title = _title(cfg, cluster, cal) + host["title"]
    if not cfg.runs and cfg.calibration:
        return SimulateResult(title, [], COLUMNS, [], cal_info, validation, host["notes"])
    runs = _runs(cfg)
    model, shape, gpu = _compute(cfg, cluster)
    compute = (calibration_compute(cal, cfg, model), shape, gpu)  # a `dodoco calibrate` file's own model wins
    dispatchers = list(cfg.dispatcher or (cal.dispatchers if cal is not None and cal.fits else ["nccl"]))
    timer = AlltoallTimer(cluster, cal)
    rows, skipped, mit = [], [], []
    for r in runs:
        got = _one_run(
            cfg, r, timer, dispatchers, compute, {"cluster": cluster.name, "calibration": cal_info["source"]}
        )
        rows, skipped, mit = rows + got[0], skipped + got[1], mit + got[2]
    rows.sort(key=lambda x: (x["model"], x["condition"], x["run"], x["dispatcher"], x["N"]))
    rows = [
        {
            **x,
            "calibration_host": host["calibration_host"],
            "host_check": host["host_check"],
            "provenance": _provenance(x),
        }
        for x in rows
    ]
    cols = COLUMNS + (LAYER_COLUMNS if compute[0] else []) + (["host_check"] if host["title"] else [])
    notes = _all_notes(cfg, runs, rows, cal, cluster, host, compute)
    return SimulateResult(title, rows, cols, skipped, cal_info, validation, notes, mit)


def _provenance(row: dict) -> dict:
    """Where each term of a row comes from: {dispatch, combine, nic, compute} labels (measured, calibrated or nominal)."""
    out = {"dispatch": row.get("nvlink", ""), "combine": row.get("nvlink", "")}
    if row.get("nic") not in (None, "-"):
        out["nic"] = row["nic"]
    if row.get("compute_source"):
        out["compute"] = row["compute_source"]
    return out


def _mitigations(cfg, run, out, timer, compute, row_bytes: int, dispatcher: str) -> list[dict]:
    """Every mitigation in layer milliseconds at each EP degree simulated for the run."""
    import numpy as np

    from dodoco.simulate.mitigate import mitigation_rows

    rows = []
    for N in sorted({x["N"] for x in out}):
        for m in mitigation_rows(
            np.asarray(run.counts),
            N,
            cfg.batch,
            timer,
            row_bytes=row_bytes,
            compute=compute,
            dispatcher=dispatcher,
            seed=cfg.seed,
            max_steps=cfg.max_steps,
        ):
            rows.append({"model": run.model, "condition": run.condition, "dispatcher": dispatcher, **m})
    return rows
