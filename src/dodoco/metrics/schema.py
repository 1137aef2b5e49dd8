"""The tidy schema of ``metrics.parquet`` and of every EP scan table, and the one table builder.

One row per (model, condition, seq_len, regime, batch, ep, placement, layer, metric, statistic)
with a float64 ``value``; pandas, polars and DuckDB read it directly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["AGGREGATE", "COLUMNS", "EP_NONE", "MODEL_LAYER", "PLACEMENT_NONE", "SCHEMA", "tidy_table"]

COLUMNS = (
    "model",
    "condition",
    "seq_len",
    "regime",
    "batch",
    "ep",
    "placement",
    "layer",
    "metric",
    "statistic",
    "value",
)
_STR, _INT = pa.string(), pa.int64()
SCHEMA = pa.schema(
    [
        ("model", _STR),
        ("condition", _STR),
        ("seq_len", _INT),
        ("regime", _STR),
        ("batch", _INT),
        ("ep", _INT),
        ("placement", _STR),
        ("layer", _INT),
        ("metric", _STR),
        ("statistic", _STR),
        ("value", pa.float64()),
    ]
)
#: ``layer`` value of model-level rows (the mean over MoE layers).
MODEL_LAYER = -1
#: ``statistic`` of the all-units rows; they carry batch = 0.
AGGREGATE = "aggregate"
#: ep / placement of per-expert metrics (one rank holds every expert; placement does not apply).
EP_NONE, PLACEMENT_NONE = 1, "none"


def tidy_table(cols: dict, labels: dict, meta: dict | None = None) -> pa.Table:
    """The one builder of SCHEMA tables: ``cols`` {column: array [n]} the columns that vary (value and
    any others), ``labels`` {column: value} every other column (constant), ``meta`` the schema
    metadata (bytes keys and values)."""
    n = len(cols["value"])
    arrays = []
    for f in SCHEMA:
        a = (
            cols[f.name]
            if f.name in cols
            else np.full(
                n,
                labels[f.name] if f.type == pa.string() else int(labels[f.name]),
                dtype=object if f.type == pa.string() else np.int64,
            )
        )
        arrays.append(pa.array(a, f.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA.with_metadata(meta or {}))
