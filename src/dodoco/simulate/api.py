"""``dodoco simulate`` as a function: ``SimulateConfig`` -> ``simulate(cfg)`` -> ``SimulateResult``.

Calibration, in order: ``--calibration FILE...`` (a calibration JSON, or replay results fitted here,
with the validation on their held-out routing), else the calibration shipped beside the preset
(``presets/<cluster>.calibration.json``), else none: the prediction is then uncalibrated (nominal
datasheet bandwidth, naive max model) and its title, rows, JSON and notes say so. ``--uncalibrated``
asks for that explicitly. Every row carries model, run, condition, cluster, dispatcher and the
calibration source, and the terms it used (``nvlink``, ``nic``, ``gemm``); nominal terms say so.

Shape legend: L MoE layers, E routed experts, N EP ranks, B sequences per rank per step, H hidden size.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from pathlib import Path

from dodoco.config import Config
from dodoco.errors import DodocoError

__all__ = ["SCHEMA", "SimulateConfig", "SimulateResult", "resolve_calibration", "simulate"]

SCHEMA = "dodoco.simulate/1"
COLUMNS = ["model", "condition", "dispatcher", "N", "nodes", "MB_per_rank", "recv_skew", "dispatch_ms",
           "balanced_ms", "imbalance_share", "hier_ms", "combine_ms"]
LAYER_COLUMNS = ["compute_ms", "compute_straggler_ms", "comm_straggler_ms", "layer_ms"]


@dataclass(frozen=True, kw_only=True)
class SimulateConfig(Config):
    """Settings of ``dodoco simulate`` (flags and TOML keys alike)."""

    runs: tuple[str, ...] = ()
    condition: tuple[str, ...] | None = None
    cluster: str = "dgx-h200"
    ep: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    batch: int = 1
    hidden: int = 2048
    dtype: str = "bf16"
    expert_width: int = 768
    calibration: tuple[str, ...] | None = None
    uncalibrated: bool = False
    dispatcher: tuple[str, ...] | None = None
    gemm: str | None = None
    placement: str = "contiguous"
    max_steps: int = 8
    seed: int = 0
    json: str | None = None
    out: str | None = None

    def __post_init__(self):
        for key in ("batch", "hidden", "expert_width", "max_steps"):
            if getattr(self, key) < 1:
                raise DodocoError(f"--{key.replace('_', '-')} {getattr(self, key)} must be >= 1")
        bad = [n for n in self.ep if n < 1]
        if bad or not self.ep:
            raise DodocoError(f"--ep {list(self.ep)}: give EP degrees >= 1, e.g. --ep 8,16,32")
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

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "title": self.title, "calibration": self.calibration, "notes": self.notes,
                "validation": self.validation, "skipped": self.skipped, "rows": self.rows}


def _is_calibration(path: str) -> bool:
    from dodoco.simulate.measure import read_json

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
        from dodoco.simulate.measure import load_groups
        from dodoco.simulate.validate import validation_rows

        groups, sources = load_groups(cfg.calibration)
        cal, records = calibrate(groups, sources)
        return cal, validation_rows(records, groups)
    return (preset_calibration(cluster.name) if cfg.cluster in presets() else None), []


def _gemm(cfg: SimulateConfig):
    from dodoco.simulate.cluster import PRESETS
    from dodoco.simulate.gemm import load_gemm_table

    if cfg.gemm:
        return load_gemm_table(cfg.gemm).for_shape(cfg.hidden, cfg.expert_width)
    tables = [load_gemm_table(f) for f in sorted(Path(PRESETS).glob("gemm-*.json"))]
    if not tables:
        return None
    want = cfg.hidden * cfg.expert_width  # the exact shape if shipped, else the nearest by FLOPs
    best = min(tables, key=lambda t: (abs(math.log(t.hidden * t.width / want)), t.hidden != cfg.hidden))
    return best.for_shape(cfg.hidden, cfg.expert_width)


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

    held = " fitted on half of the sequences, evaluated on the other half" \
        if PLACEMENTS[check_placements(cfg.placement)[0]].fitted else ""
    shape = f"H={cfg.hidden} {cfg.dtype}, B={cfg.batch}, {cfg.placement}{held}"
    if cal is None:
        return (f"UNCALIBRATED prediction on {cluster.name} ({shape}): nominal datasheet bandwidth and the naive "
                "max model, no measurement behind it")
    return f"predicted dispatch and MoE layer on {cluster.name} ({shape}), calibrated on {cal.describe()}"


def _notes(rows, cal, cluster) -> list[str]:
    notes = ["predictions of the model, not measurements"]
    if cal is None:
        notes.append(f"uncalibrated: {cluster.nominal_nvlink()}; no calibration for cluster {cluster.name} "
                     "(pass --calibration FILE from `dodoco replay` or bench/bench_dispatch.py)")
    if any(r["nodes"] > 1 for r in rows):
        notes.append(f"EP across nodes uses NIC terms that are {cluster.nominal_nic()}")
    for label in sorted({r["gemm"] for r in rows if str(r.get("gemm", "")).startswith("nominal")}):
        notes.append(f"expert compute is {label}")
    return notes


def simulate(cfg: SimulateConfig) -> SimulateResult:
    """Predict dispatch and MoE-layer time per run, dispatcher and EP degree on the cluster."""
    from dodoco.replay.config import dtype_bytes
    from dodoco.simulate.cluster import AlltoallTimer, load_cluster
    from dodoco.simulate.layer import simulate_ep

    cluster = load_cluster(cfg.cluster)
    cal, validation = resolve_calibration(cfg, cluster)
    cal_info = {"source": cal.describe() if cal is not None else "none: uncalibrated (nominal datasheet numbers)",
                "fits": [f.label() for f in cal.fits] if cal is not None else []}
    if not cfg.runs and cfg.calibration:
        return SimulateResult(_title(cfg, cluster, cal), [], COLUMNS, [], cal_info, validation)
    runs, gemm = _runs(cfg), _gemm(cfg)
    dispatchers = list(cfg.dispatcher or (cal.dispatchers if cal is not None else ["nccl"]))
    timer = AlltoallTimer(cluster, cal)
    rows, skipped = [], []
    for r in runs:
        out, skip = simulate_ep(r.counts, cfg.ep, cfg.batch, timer, row_bytes=cfg.hidden * dtype_bytes(cfg.dtype),
                                dispatchers=dispatchers, gemm=gemm, placement=cfg.placement, seed=cfg.seed,
                                max_steps=cfg.max_steps, source=r.source(cfg.seed))
        label = {"model": r.model, "run": str(r.path), "condition": r.condition, "cluster": cluster.name,
                 "calibration": cal_info["source"], "batch": cfg.batch,
                 "source_split": r.source(cfg.seed).source_split}
        rows += [{**label, **x} for x in out]
        skipped += [{"model": r.model, "run": str(r.path), "condition": r.condition, "N": n, "reason": why}
                    for n, why in skip]
    rows.sort(key=lambda x: (x["model"], x["condition"], x["run"], x["dispatcher"], x["N"]))
    cols = COLUMNS + (LAYER_COLUMNS if gemm is not None else [])
    notes = _notes(rows, cal, cluster) + [
        f"{r.path} holds one aggregate window: it is one step, its tokens split evenly over the source ranks "
        "(assumed, not recorded)" for r in runs if r.source(cfg.seed).source_split == "uniform"]
    return SimulateResult(_title(cfg, cluster, cal), rows, cols, skipped, cal_info, validation, notes)
