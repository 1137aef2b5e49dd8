"""The tidy metrics table (``metrics.parquet``): per-step and aggregate imbalance of one run.

One row per (model, condition, seq_len, regime, batch, ep, placement, layer, metric, statistic) with
a float64 ``value``; pandas, polars and DuckDB read it directly. Built column-wise from numpy.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import METRICS, all_metrics
from dodoco.metrics.steps import STATISTICS, step_order, summarise

__all__ = [
    "AGGREGATE",
    "COLUMNS",
    "MODEL_LAYER",
    "SCHEMA",
    "metrics_table",
    "skipped_batches",
    "summary_frame",
    "write_parquet_atomic",
]

COLUMNS = ("model", "condition", "seq_len", "regime", "batch", "ep", "placement", "layer", "metric",
           "statistic", "value")
_STR, _INT = pa.string(), pa.int64()
SCHEMA = pa.schema([
    ("model", _STR), ("condition", _STR), ("seq_len", _INT), ("regime", _STR), ("batch", _INT),
    ("ep", _INT), ("placement", _STR), ("layer", _INT), ("metric", _STR), ("statistic", _STR),
    ("value", pa.float64()),
])
#: ``layer`` value of model-level rows (the mean over MoE layers).
MODEL_LAYER = -1
#: ``statistic`` of the all-sequences rows; they carry batch = 0.
AGGREGATE = "aggregate"
#: ep / placement of per-expert metrics (one rank holds every expert; placement does not apply).
EP_NONE, PLACEMENT_NONE = 1, "none"
_SKIPPED_KEY = b"skipped_batches"


def _with_model_level(v: np.ndarray) -> np.ndarray:
    """v[..., L] -> [..., L+1]: index 0 is the model-level value (NaN-ignoring mean over layers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step with every layer empty -> NaN
        model = np.nanmean(v, axis=-1) if np.isnan(v).any() else v.mean(axis=-1)
    return np.concatenate([model[..., None], v], axis=-1)


def _metric_array(c: np.ndarray) -> np.ndarray:
    """c[..., L, E] -> float64 [..., 5, L+1]: the metrics (METRICS order), model level first."""
    m = all_metrics(c)
    return _with_model_level(np.stack([m[name] for name in METRICS], axis=-2))


def _steps_by_batch(counts: np.ndarray, batches: list[int], seed: int):
    """Yield (B, steps[S // B, L, E]) for ascending B, steps in step_order(S, seed).

    A step of B is the sum of B/b consecutive steps of an already computed b dividing B (same
    order, same remainder rule), so the full array is summed once rather than once per B.
    """
    ordered = counts[step_order(counts.shape[0], seed)]
    done: dict[int, np.ndarray] = {1: ordered}
    for B in batches:
        if B not in done:
            base = max(b for b in done if B % b == 0)
            src = done[base]
            n, g = ordered.shape[0] // B, B // base
            done[B] = src[: n * g].reshape((n, g) + src.shape[1:]).sum(axis=1, dtype=np.int64)
        yield B, done[B]


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
    """Imbalance of counts[S, L, E] as a tidy table (columns COLUMNS, schema SCHEMA).

    For each B in ``batch_sizes`` (ascending, duplicates dropped) with B <= S: steps of B sequences
    in step_order(S, seed), the five METRICS per step and layer, the model-level value per step
    (mean over layers, NaN-ignoring), then STATISTICS over steps (bootstrap seeded with ``seed``).
    Rows: layer -1 (model) and 0..L-1 (position in counts), every metric, every statistic; ep = 1,
    placement "none". Plus statistic "aggregate", batch 0: the metrics of all S sequences summed,
    per layer, and model-level = mean of the per-layer aggregate values.

    Batch sizes B > S are skipped and listed in the schema metadata (read with skipped_batches).
    """
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] == 0:
        raise DodocoError(f"counts must have shape [S, L, E] with S >= 1, got shape {counts.shape}")
    S, L, _ = counts.shape
    batches = sorted({int(b) for b in batch_sizes})
    if batches and batches[0] < 1:
        raise DodocoError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    kept, skipped = [b for b in batches if b <= S], [b for b in batches if b > S]

    parts = []
    for B, steps in _steps_by_batch(counts, kept, seed):
        stats = summarise(_metric_array(steps).reshape(steps.shape[0], -1), n_boot=n_boot, seed=seed)
        block = np.stack([stats[s] for s in STATISTICS]).reshape(len(STATISTICS), len(METRICS), L + 1)
        parts.append(_rows(block.transpose(1, 0, 2), STATISTICS, batch=B, L=L))
    agg = _metric_array(counts.sum(axis=0, dtype=np.int64))  # [5, L+1]
    parts.append(_rows(agg[:, None, :], (AGGREGATE,), batch=0, L=L))

    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = cols["value"].shape[0]
    const = {"model": str(model), "condition": str(condition), "regime": str(regime),
             "placement": PLACEMENT_NONE}
    arrays = {k: pa.array(np.full(n, v, dtype=object), _STR) for k, v in const.items()}
    arrays["seq_len"] = pa.array(np.full(n, int(seq_len), dtype=np.int64))
    arrays["ep"] = pa.array(np.full(n, EP_NONE, dtype=np.int64))
    for k in ("batch", "layer", "value"):
        arrays[k] = pa.array(cols[k])
    for k in ("metric", "statistic"):
        arrays[k] = pa.array(cols[k], _STR)
    meta = {_SKIPPED_KEY: json.dumps(skipped).encode(), b"seed": str(seed).encode(),
            b"n_boot": str(n_boot).encode()}
    return pa.Table.from_arrays([arrays[c] for c in COLUMNS], schema=SCHEMA.with_metadata(meta))


def skipped_batches(table: pa.Table) -> list[int]:
    """Batch sizes metrics_table skipped because B > S (from the schema metadata; [] if none)."""
    raw = (table.schema.metadata or {}).get(_SKIPPED_KEY)
    return json.loads(raw) if raw else []


def write_parquet_atomic(table: pa.Table, path) -> Path:
    """Write ``table`` to ``path`` atomically (dodoco.store.atomic: temp file, fsync, rename)."""
    from dodoco.store.atomic import write_bytes

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes(Path(path), sink.getvalue().to_pybytes())
    return Path(path)


def summary_frame(table: pa.Table) -> list[dict]:
    """Model-level gini and max_mean per (model, condition, seq_len, regime, ep, placement, batch).

    Uses layer -1 rows with statistic "mean" (per-step, batch >= 1) or "aggregate" (batch 0).
    Returns dicts with those keys plus "gini" and "max_mean", in order of first appearance.
    """
    d = {c: table.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS}
    keep = ((d["layer"] == MODEL_LAYER) & np.isin(d["metric"], ["gini", "max_mean"])
            & (((d["statistic"] == "mean") & (d["batch"] > 0))
               | ((d["statistic"] == AGGREGATE) & (d["batch"] == 0))))
    keys = ("model", "condition", "seq_len", "regime", "ep", "placement", "batch")
    out: dict[tuple, dict] = {}
    for i in np.flatnonzero(keep):
        key = tuple(d[k][i].item() if hasattr(d[k][i], "item") else d[k][i] for k in keys)
        row = out.setdefault(key, {**dict(zip(keys, key)), "gini": float("nan"),
                                   "max_mean": float("nan")})
        row[d["metric"][i]] = float(d["value"][i])
    return list(out.values())
