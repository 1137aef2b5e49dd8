"""What ``dodoco analyze`` computes, as an API: metrics tables and EP scans of run directories.

``analyze(AnalyzeConfig(...)) -> Analysis``: per run, the tidy metrics table (written to the run's
``metrics.parquet``) and its model-level summary, and with ``ep`` or ``placement`` the EP scan
(``dodoco.ep.scan.ep_scan`` on the run's step source). Every run is analysed the same way: a
window aggregate is one step for every B and N (its rows say ``steps`` 1 and its source-rank split
is ``uniform``), and rows resting on one or two steps are named in the notes.

Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from dodoco import defaults
from dodoco.config import Config
from dodoco.errors import DodocoError
from dodoco.metrics.table import metrics_table, summary_frame, write_parquet_atomic
from dodoco.store.run import Run, find_runs, open_run

__all__ = ["Analysis", "AnalyzeConfig", "analyze", "ep_rows", "run_metrics",
           "summary_rows", "write_metrics"]

#: Rows resting on this many steps or fewer are flagged (their intervals mean little).
FEW_STEPS = 2


@dataclass(frozen=True, kw_only=True)
class AnalyzeConfig(Config):
    """runs: run directories or folders holding them; batch: B (sequences per rank per step);
    ep: EP degrees N of the scan (empty: no scan unless placement is given; then default_eps);
    placement: placements of the scan (empty: contiguous); json: one JSON document of every
    table ('-' = stdout); write: write each run's metrics.parquet."""

    runs: tuple[str, ...]
    batch: tuple[int, ...] = defaults.BATCHES
    ep: tuple[int, ...] = ()
    placement: tuple[str, ...] = ()
    seed: int = 0
    json: str | None = None
    write: bool = True

    def __post_init__(self):
        from dodoco.ep.placements import check_placements

        if not self.runs:
            raise DodocoError("analyze needs at least one run directory or folder of runs")
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
    return metrics_table(run.source(seed), model=run.model, condition=run.condition,
                         seq_len=run.seq_len, batch_sizes=batch_sizes or defaults.BATCHES, seed=seed)


def write_metrics(path, batch_sizes=None) -> pa.Table:
    """Compute the metrics of the run at ``path`` and write its ``metrics.parquet`` atomically."""
    run = open_run(path)
    table = run_metrics(run, batch_sizes)
    write_parquet_atomic(table, Path(path) / "metrics.parquet")
    return table


def _flag(run: Run, rows: list[dict], what: str) -> list[str]:
    few = sorted({r["steps"] for r in rows if r.get("steps") is not None and r["steps"] <= FEW_STEPS})
    if not few:
        return []
    return [f"{run.path}: {what} rows resting on {' or '.join(map(str, few))} step(s) (column steps): "
            "their intervals mean little; observe more sequences"]


def summary_rows(paths, batch_sizes=None, *, write: bool = True, seed: int = 0,
                 notes: list | None = None) -> list[dict]:
    """Model x condition x batch summary (model-level Gini, max/mean, steps) over the runs in
    ``paths``; batch "all" is every unit summed. Flagged rows go to ``notes`` when given."""
    rows: list[dict] = []
    for run in paths if all(isinstance(p, Run) for p in paths) else find_runs(paths):
        table = run_metrics(run, batch_sizes, seed)
        if write:
            write_parquet_atomic(table, run.path / "metrics.parquet")
        part = [{**r, "batch": "all" if r["batch"] == 0 else r["batch"]} for r in summary_frame(table)]
        rows += part
        if notes is not None:
            notes += _flag(run, part, "summary")
    return rows


def _scan_notes(run: Run, result) -> list[str]:
    notes = []
    sizes = [f"{s['ep']}x{s['batch']}" for s in result.skipped if s["placement"] is None]
    if sizes:
        notes.append(f"{run.path}: skipped EP x batch {', '.join(sizes)} (more than its {run.S} "
                     f"sequences, or than the held-out part for fitted placements)")
    notes += [f"{run.path}: skipped {s['placement']}" + (f" at EP={s['ep']}" if s["ep"] else "")
              + f": {s['reason']}" for s in result.skipped if s["placement"] is not None]
    if result.meta.get("source_split") == "uniform":
        notes.append(f"{run.path}: one window aggregate: each step's tokens are split evenly over the "
                     f"source ranks (source_split uniform), so send/recv are not observed")
    if result.meta.get("part") == "held-out":
        notes.append(f"{run.path}: every placement evaluated on the held-out part "
                     f"({int(run.S - round(result.meta['fit_frac'] * run.S))} of {run.S} sequences); "
                     f"fitted placements fitted on the rest")
    return notes


def ep_rows(run: Run, ep=(), batch=defaults.BATCHES, placement=(), seed: int = 0):
    """(EP scan rows, notes) of one run: model level, sorted by N within B, with the steps behind
    each row. DodocoError naming the sequences needed when no (N, B) pair has a step."""
    from dodoco.defaults import default_eps
    from dodoco.ep.scan import ep_scan

    result = ep_scan(run, ep=tuple(ep) or default_eps(run.E), batch=batch,
                     placement=tuple(placement) or ("contiguous",), seed=seed)
    too_big = [s for s in result.skipped if s["placement"] is None]
    if not result.keys and too_big:
        raise DodocoError(min(too_big, key=lambda s: s["ep"] * s["batch"])["reason"])
    rows = result.rows()
    return rows, _scan_notes(run, result) + _flag(run, rows, "EP")


def analyze(cfg: AnalyzeConfig) -> Analysis:
    """Every table of ``dodoco analyze`` for cfg.runs (opened and checked before any work)."""
    runs = find_runs(cfg.runs)
    out = Analysis()
    out.summary = summary_rows(runs, cfg.batch, write=cfg.write, seed=cfg.seed, notes=out.notes)
    if cfg.scan:
        for run in runs:
            rows, notes = ep_rows(run, cfg.ep, cfg.batch, cfg.placement, cfg.seed)
            out.ep += rows
            out.notes += notes
    return out
