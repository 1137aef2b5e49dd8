"""Imbalance metrics, statistics over steps and the tidy table schema: pure functions on arrays (no
torch, no model, nothing above this package). Steps are formed in ``dodoco.ep.steps``; the metrics
table of a run is ``dodoco.analysis.metrics_table``.

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
from dodoco.metrics.schema import AGGREGATE, COLUMNS, MODEL_LAYER, SCHEMA, tidy_table
from dodoco.metrics.stats import STATISTICS, bootstrap_mean_ci, layer_mean, summarise

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
    "layer_mean",
    "lorenz",
    "max_mean",
    "norm_entropy",
    "summarise",
    "tidy_table",
]
