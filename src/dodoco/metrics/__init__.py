"""Imbalance metrics, statistics over steps and the tidy metrics table: pure numpy (no torch, no
model). Steps are formed in ``dodoco.ep.steps``.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step. Formulas: docs/metrics.md.
"""

from dodoco.metrics.imbalance import (
    METRICS,
    all_metrics,
    cv,
    gini,
    hot_count,
    hot_share,
    lorenz,
    max_mean,
    norm_entropy,
)
from dodoco.metrics.schema import AGGREGATE, COLUMNS, MODEL_LAYER, SCHEMA
from dodoco.metrics.stats import STATISTICS, bootstrap_mean_ci, summarise
from dodoco.metrics.table import metrics_table, skipped_batches, summary_frame, write_parquet_atomic

__all__ = [
    "AGGREGATE",
    "COLUMNS",
    "METRICS",
    "MODEL_LAYER",
    "SCHEMA",
    "STATISTICS",
    "all_metrics",
    "bootstrap_mean_ci",
    "cv",
    "gini",
    "hot_count",
    "hot_share",
    "lorenz",
    "max_mean",
    "metrics_table",
    "norm_entropy",
    "skipped_batches",
    "summarise",
    "summary_frame",
    "write_parquet_atomic",
]
