"""The tidy metrics table (``metrics.parquet``): per-step and aggregate imbalance of one run.

One row per (model, condition, seq_len, regime, batch, ep, placement, layer, metric, statistic) with
a float64 ``value``; pandas, polars and DuckDB read it directly. Built column-wise from numpy.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dodoco.ep.steps import StepSource, layer_mean, source_of
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import METRICS, all_metrics
from dodoco.metrics.schema import AGGREGATE, COLUMNS, EP_NONE, MODEL_LAYER, PLACEMENT_NONE, SCHEMA
from dodoco.metrics.stats import STATISTICS, summarise

__all__ = ["metrics_table", "parquet_bytes", "skipped_batches", "summary_frame", "write_parquet_atomic"]

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


def metrics_table(counts, *, model: str, condition: str, seq_len: int,
                  batch_sizes=(1, 2, 4, 8, 16, 32), seed: int = 0, n_boot: int = 1000,
                  regime: str = "prefill") -> pa.Table:
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
    return _table(parts, dict(model=model, condition=condition, regime=regime, seq_len=seq_len),
                  {_SKIPPED_KEY: json.dumps([b for b in batches if b not in kept]).encode(),
                   b"seed": str(seed).encode(), b"n_boot": str(n_boot).encode(),
                   b"source_split": src.source_split.encode()})


def _table(parts: list[dict], labels: dict, meta: dict) -> pa.Table:
    """Column parts (batch, layer, metric, statistic, value) + constant labels -> SCHEMA table."""
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = cols["value"].shape[0]
    const = {"model": str(labels["model"]), "condition": str(labels["condition"]),
             "regime": str(labels["regime"]), "placement": PLACEMENT_NONE}
    arrays = {k: pa.array(np.full(n, v, dtype=object), pa.string()) for k, v in const.items()}
    arrays["seq_len"] = pa.array(np.full(n, int(labels["seq_len"]), dtype=np.int64))
    arrays["ep"] = pa.array(np.full(n, EP_NONE, dtype=np.int64))
    for k in ("batch", "layer", "value"):
        arrays[k] = pa.array(cols[k])
    for k in ("metric", "statistic"):
        arrays[k] = pa.array(cols[k], pa.string())
    return pa.Table.from_arrays([arrays[c] for c in COLUMNS], schema=SCHEMA.with_metadata(meta))


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
    from dodoco.store.atomic import write_bytes

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
    keep = ((d["layer"] == MODEL_LAYER) & np.isin(d["metric"], ["gini", "max_mean"])
            & (per_step | ((d["statistic"] == AGGREGATE) & (d["batch"] == 0))))
    keys = ("model", "condition", "seq_len", "regime", "ep", "placement", "batch")
    out: dict[tuple, dict] = {}
    for i in np.flatnonzero(keep):
        key = tuple(d[k][i].item() if hasattr(d[k][i], "item") else d[k][i] for k in keys)
        row = out.setdefault(key, {**dict(zip(keys, key)), "gini": float("nan"),
                                   "max_mean": float("nan"), "steps": None})
        if d["statistic"][i] == "n_steps":
            if d["metric"][i] == "gini":
                row["steps"] = int(d["value"][i])
        else:
            row[d["metric"][i]] = float(d["value"][i])
    return list(out.values())
