"""The paper's three verdicts as pure functions on tables and arrays, each with its evidence tables.

- ``ep_invariance``: does the per-expert straggler move with the EP degree? ("intrinsic" /
  "placement-sensitive")
- ``mock_vs_real``: Gini(mock)/Gini(real) and the batch-size trend ("fabricated by mock")
- ``bands``: data-resilient / intermediate / persistently concentrated, plus a data-derived grouping

``dodoco.findings.runs`` applies them to run directories. Formulas and defaults: docs/findings.md.
"""

from dodoco.findings.bands import CONCENTRATED, INTERMEDIATE, RESILIENT, bands, gap_groups
from dodoco.findings.ep_invariance import ep_invariance, relative_change
from dodoco.findings.mock_real import GiniSeries, batch_trend, mock_vs_real, step_gini
from dodoco.findings.runs import (
    bands_of_runs,
    ep_invariance_of_runs,
    gini_series,
    mock_vs_real_of_runs,
)
from dodoco.findings.verdict import Verdict, condition_kind

__all__ = [
    "CONCENTRATED",
    "INTERMEDIATE",
    "RESILIENT",
    "GiniSeries",
    "Verdict",
    "bands",
    "bands_of_runs",
    "batch_trend",
    "condition_kind",
    "ep_invariance",
    "ep_invariance_of_runs",
    "gap_groups",
    "gini_series",
    "mock_vs_real",
    "mock_vs_real_of_runs",
    "relative_change",
    "step_gini",
]
