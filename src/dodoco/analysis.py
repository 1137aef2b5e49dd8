"""What ``dodoco analyze`` computes, as an API: metrics tables and EP scans of run directories.

The tidy metrics table (``metrics_table``, ``metrics.parquet``): one row per (model, condition,
seq_len, regime, batch, ep, placement, layer, metric, statistic) with a float64 ``value``
(``metrics.schema.SCHEMA``), built by the one table builder ``metrics.schema.tidy_table``.

``analyze(AnalyzeConfig(...)) -> Analysis``: per run, the tidy metrics table (written to the run's
``metrics.parquet``) and its model-level summary, and with ``ep`` or ``placement`` the EP scan
(``dodoco.ep.scan.ep_scan`` on the run's step source). Every run is analysed the same way: a
window aggregate is one step for every B and N (its rows say ``steps`` 1 and its source-rank split
is ``uniform``), and rows resting on one or two steps are named in the notes.

Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dodoco import defaults
from dodoco.config import Config
from dodoco.ep.result import FEW_STEPS  # rows resting on this many steps or fewer are flagged
from dodoco.ep.placements import check_placements
from dodoco.ep.steps import StepSource, run_source, source_of
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import METRICS, all_metrics
from dodoco.metrics.schema import AGGREGATE, COLUMNS, EP_NONE, MODEL_LAYER, PLACEMENT_NONE, tidy_table
from dodoco.metrics.stats import STATISTICS, layer_mean, summarise
from dodoco.store.atomic import write_bytes
from dodoco.store.run import Run, find_runs
from dodoco.store.writer import record_file

__all__ = [
    "Analysis",
    "AnalyzeConfig",
    "analyze",
    "ep_rows",
    "metrics_table",
    "run_metrics",
    "skipped_batches",
    "parquet_bytes",
    "summary_frame",
    "summary_rows",
    "write_metrics",
    "write_parquet_atomic",
]


_SKIPPED_KEY = b"skipped_batches"


def _metric_array(c: np.ndarray) -> np.ndarray:
    """c[..., L, E] -> float64 [..., 5, L+1]: the metrics (METRICS order), model level first."""
    m = np.stack([v for v in all_metrics(c).values()], axis=-2)  # [..., 5, L]
    return np.concatenate([layer_mean(m)[..., None], m], axis=-1)


def _rows(block: np.ndarray, statistics, *, batch: int, L: int) -> dict[str, np.ndarray]:
    """block[5 metrics, n_stats, L+1] -> column arrays (metric, statistic, layer order)."""
    n_m, n_s, n_l = block.shape
    return {
        "batch": np.full(block.size, batch, dtype=np.int64),
        "layer": np.tile(np.arange(-1, L, dtype=np.int64), n_m * n_s),
        "metric": np.repeat(np.array(list(METRICS), dtype=object), n_s * n_l),
        "statistic": np.tile(np.repeat(np.array(list(statistics), dtype=object), n_l), n_m),
        "value": block.ravel(),
    }


def metrics_table(
    counts,
    *,
    model: str,
    condition: str,
    seq_len: int,
    batch_sizes=defaults.BATCHES,
    seed: int = 0,
    n_boot: int = defaults.N_BOOT,
    regime: str = "prefill",
) -> pa.Table:
    """Imbalance of counts[S, L, E] (or of a ``StepSource``) as a tidy table (SCHEMA).

    For each B in ``batch_sizes`` (ascending, duplicates dropped) with at least one step: the steps
    of B units (``dodoco.ep.steps``: seeded order, remainder dropped; a window aggregate is one
    step for every B), the five METRICS per step and layer, the model level per step (layer_mean),
    then STATISTICS over steps (bootstrap seeded with ``seed``; ``n_steps`` counts the steps).
    Rows: layer -1 (model) and 0..L-1, every metric, every statistic; ep = 1, placement "none".
    Plus statistic "aggregate", batch 0: the metrics of all units summed, per layer, and model
    level = mean of the per-layer aggregate values. Batch sizes without a step are skipped and
    listed in the schema metadata (read with skipped_batches).
    """
    src = counts if isinstance(counts, StepSource) else source_of(counts, seed)
    batches = sorted({int(b) for b in batch_sizes})
    if batches and batches[0] < 1:
        raise DodocoError(f"batch sizes must be >= 1, got {list(batch_sizes)}: give positive integers")
    kept = [b for b in batches if src.n_steps(b)]
    agg = _metric_array(src.aggregate())  # [5, L+1]
    L = agg.shape[-1] - 1
    parts = []
    for B in kept:
        steps = src.steps(B)
        stats = summarise(_metric_array(steps).reshape(steps.shape[0], -1), n_boot=n_boot, seed=seed)
        block = np.stack([stats[s] for s in STATISTICS]).reshape(len(STATISTICS), len(METRICS), L + 1)
        parts.append(_rows(block.transpose(1, 0, 2), STATISTICS, batch=B, L=L))
    parts.append(_rows(agg[:, None, :], (AGGREGATE,), batch=0, L=L))
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    labels = dict(
        model=str(model),
        condition=str(condition),
        regime=str(regime),
        seq_len=int(seq_len),
        ep=EP_NONE,
        placement=PLACEMENT_NONE,
    )
    return tidy_table(
        cols,
        labels,
        {
            _SKIPPED_KEY: json.dumps([b for b in batches if b not in kept]).encode(),
            b"seed": str(seed).encode(),
            b"n_boot": str(n_boot).encode(),
            b"source_split": src.source_split.encode(),
        },
    )


def skipped_batches(table: pa.Table) -> list[int]:
    """Batch sizes metrics_table skipped because B > S (from the schema metadata; [] if none)."""
    raw = (table.schema.metadata or {}).get(_SKIPPED_KEY)
    return json.loads(raw) if raw else []


def parquet_bytes(table: pa.Table) -> bytes:
    """The Parquet file of ``table``, as bytes (a run lists them in its manifest: store.writer.record_file)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_parquet_atomic(table: pa.Table, path) -> Path:
    """Write ``table`` to ``path`` atomically (dodoco.store.atomic: temp file, fsync, rename)."""
    write_bytes(Path(path), parquet_bytes(table))
    return Path(path)


def summary_frame(table: pa.Table) -> list[dict]:
    """Model-level gini and max_mean per (model, condition, seq_len, regime, ep, placement, batch).

    Uses layer -1 rows with statistic "mean" (per-step, batch >= 1) or "aggregate" (batch 0).
    Returns dicts with those keys plus "gini", "max_mean" and "steps" (the steps behind the
    per-step means; None for the aggregate), in order of first appearance.
    """
    d = {c: table.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS}
    per_step = (d["batch"] > 0) & np.isin(d["statistic"], ["mean", "n_steps"])
    keep = (
        (d["layer"] == MODEL_LAYER)
        & np.isin(d["metric"], ["gini", "max_mean"])
        & (per_step | ((d["statistic"] == AGGREGATE) & (d["batch"] == 0)))
    )
    keys = ("model", "condition", "seq_len", "regime", "ep", "placement", "batch")
    out: dict[tuple, dict] = {}
    for i in np.flatnonzero(keep):
        key = tuple(d[k][i].item() if hasattr(d[k][i], "item") else d[k][i] for k in keys)
        row = out.setdefault(
            key, {**dict(zip(keys, key)), "gini": float("nan"), "max_mean": float("nan"), "steps": None}
        )
        if d["statistic"][i] == "n_steps":
            if d["metric"][i] == "gini":
                row["steps"] = int(d["value"][i])
        else:
            row[d["metric"][i]] = float(d["value"][i])
    return list(out.values())


@dataclass(frozen=True, kw_only=True)
class AnalyzeConfig(Config):
    """runs: run directories or folders holding them; batch: B (sequences per rank per step);
    ep: EP degrees N of the scan (empty: no scan unless placement is given; then default_eps);
    placement: placements of the scan (empty: contiguous); json: one JSON document of every
    table ('-' = stdout); out: the same document to a file; write: write each run's metrics.parquet."""

    runs: tuple[str, ...]
    batch: tuple[int, ...] = defaults.BATCHES
    ep: tuple[int, ...] = ()
    placement: tuple[str, ...] = ()
    json: str | None = None
    out: str | None = None
    seed: int = 0
    write: bool = True

    def __post_init__(self):
        if not self.runs:
            raise DodocoError("no run given: name run directories or folders holding them, e.g. dodoco analyze runs/x")
        for flag, values in (("--batch", self.batch), ("--ep", self.ep)):
            bad = [v for v in values if v < 1]
            if bad:
                raise DodocoError(f"{flag} {bad[0]} is not allowed: give integers >= 1, e.g. {flag} 4,8")
        if not self.batch:
            raise DodocoError("--batch is empty: give at least one batch size, e.g. --batch 1,8")
        check_placements(self.placement)

    @property
    def scan(self) -> bool:
        return bool(self.ep or self.placement)


@dataclass
class Analysis:
    """summary: model-level rows per (run, batch), batch "all" for all units summed; ep: EP scan
    rows per (run, B, N, placement), sorted by N within B; notes: what was skipped or flagged."""

    summary: list[dict] = field(default_factory=list)
    ep: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict:
        return {"summary": self.summary, "ep": self.ep, "notes": self.notes}


def run_metrics(run: Run, batch_sizes=None, seed: int = 0) -> pa.Table:
    """Per-step (batch sizes) and aggregate metrics of one run (its step source), as the tidy table."""
    return metrics_table(
        run_source(run, seed),
        model=run.model,
        condition=run.condition,
        seq_len=run.seq_len,
        batch_sizes=batch_sizes or defaults.BATCHES,
        seed=seed,
    )


def write_metrics(path, batch_sizes=None) -> pa.Table:
    """Compute the metrics of the run at ``path`` and write its ``metrics.parquet`` (listed in the manifest)."""
    from dodoco.store.run import open_run

    run = open_run(path)
    table = run_metrics(run, batch_sizes)
    _record_metrics(run.path, table)
    return table


def _record_metrics(path: Path, table: pa.Table) -> None:
    """Write ``metrics.parquet`` into the run and list it (sha256, size) in its manifest."""
    record_file(path, "metrics.parquet", parquet_bytes(table), shape=(table.num_rows,), dtype="parquet")


def _flag(run: Run, rows: list[dict], what: str) -> list[str]:
    few = sorted({r["steps"] for r in rows if r.get("steps") is not None and r["steps"] <= FEW_STEPS})
    if not few:
        return []
    return [
        f"{run.path}: {what} rows resting on {' or '.join(map(str, few))} step(s) (column steps): "
        "no interval is given (one or two steps make none); observe more sequences"
    ]


def summary_rows(
    paths, batch_sizes=None, *, write: bool = True, seed: int = 0, notes: list | None = None
) -> list[dict]:
    """Model x condition x batch summary (model-level Gini, max/mean, steps) over the runs in
    ``paths``; batch "all" is every unit summed. Flagged rows go to ``notes`` when given."""
    rows: list[dict] = []
    for run in paths if all(isinstance(p, Run) for p in paths) else find_runs(paths):
        table = run_metrics(run, batch_sizes, seed)
        if write:
            _record_metrics(run.path, table)
        part = [{**r, "batch": "all" if r["batch"] == 0 else r["batch"]} for r in summary_frame(table)]
        rows += part
        if notes is not None:
            notes += _flag(run, part, "summary")
    return rows


def _scan_notes(run: Run, result) -> list[str]:
    notes = []
    sizes = [f"{s['ep']}x{s['batch']}" for s in result.skipped if s["placement"] is None]
    if sizes:
        notes.append(
            f"{run.path}: skipped EP x batch {', '.join(sizes)} (more than its {run.S} "
            f"sequences, or than the held-out part for fitted placements)"
        )
    notes += [
        f"{run.path}: skipped {s['placement']}" + (f" at EP={s['ep']}" if s["ep"] else "") + f": {s['reason']}"
        for s in result.skipped
        if s["placement"] is not None
    ]
    if result.meta.get("source_split") == "uniform":
        notes.append(
            f"{run.path}: one window aggregate: each step's tokens are split evenly over the "
            f"source ranks (source_split uniform), so send/recv are not observed"
        )
    if result.meta.get("part") == "held-out":
        notes.append(
            f"{run.path}: every placement evaluated on the held-out part "
            f"({int(run.S - round(result.meta['fit_frac'] * run.S))} of {run.S} sequences); "
            f"fitted placements fitted on the rest"
        )
    return notes


def ep_rows(run: Run, ep=(), batch=defaults.BATCHES, placement=(), seed: int = 0):
    """(EP scan rows, notes) of one run: model level, sorted by N within B, with the steps behind
    each row. DodocoError naming the sequences needed when no (N, B) pair has a step."""
    from dodoco.defaults import default_eps
    from dodoco.ep.scan import ep_scan

    result = ep_scan(
        run, ep=tuple(ep) or default_eps(run.E), batch=batch, placement=tuple(placement) or ("contiguous",), seed=seed
    )
    too_big = [s for s in result.skipped if s["placement"] is None]
    if not result.keys and too_big:
        raise DodocoError(min(too_big, key=lambda s: s["ep"] * s["batch"])["reason"])
    rows = result.rows()
    return rows, _scan_notes(run, result) + _flag(run, rows, "EP")


def analyze(cfg: AnalyzeConfig) -> Analysis:
    """Every table of ``dodoco analyze`` for cfg.runs (opened and checked before any work)."""
    runs = find_runs(cfg.runs)
    for run in runs:
        _ = run.counts.shape  # a missing or corrupt counts file fails here, before anything is written
    out = Analysis()
    out.summary = summary_rows(runs, cfg.batch, write=cfg.write, seed=cfg.seed, notes=out.notes)
    if cfg.scan:
        for run in runs:
            rows, notes = ep_rows(run, cfg.ep, cfg.batch, cfg.placement, cfg.seed)
            out.ep += rows
            out.notes += notes
    return out
