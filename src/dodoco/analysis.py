"""Glue between run directories and the metric tables: compute, store and summarise."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dodoco.errors import DodocoError
from dodoco.metrics.table import metrics_table, summary_frame, write_parquet_atomic
from dodoco.store.run import Run, find_runs, open_run

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32)


def run_metrics(run: Run, batch_sizes=None) -> pa.Table:
    """Per-step (batch sizes) and aggregate metrics of one run, as the tidy table."""
    if run.granularity == "window":
        if batch_sizes:
            fmt = run.manifest.details.get("source", {}).get("format", "an engine")
            raise DodocoError(f"run {run.path} holds counts aggregated over a window ({fmt} dump): per-step metrics "
                              "(--batch) need per-pass or per-sequence data; drop --batch for aggregate metrics")
        return metrics_table(run.counts, model=run.model, condition=run.condition, seq_len=run.seq_len,
                             batch_sizes=())
    return metrics_table(run.counts, model=run.model, condition=run.condition, seq_len=run.seq_len,
                         batch_sizes=batch_sizes or DEFAULT_BATCHES)


def write_metrics(path, batch_sizes=None) -> pa.Table:
    """Compute the metrics of the run at ``path`` and write its ``metrics.parquet`` atomically."""
    run = open_run(path)
    table = run_metrics(run, batch_sizes)
    write_parquet_atomic(table, Path(path) / "metrics.parquet")
    return table


def summary_rows(paths, batch_sizes=None, *, write: bool = True) -> list[dict]:
    """Model x condition x batch summary (model-level Gini and max/mean) over the runs in ``paths``."""
    rows: list[dict] = []
    for run in find_runs(paths):
        table = run_metrics(run, batch_sizes)
        if write:
            write_parquet_atomic(table, run.path / "metrics.parquet")
        rows.extend(summary_frame(table))
    return rows
