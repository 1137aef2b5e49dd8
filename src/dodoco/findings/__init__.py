"""The paper's three verdicts, and the one path from runs to them.

``judge(runs, FindingsOptions()) -> Findings``: verdicts keyed by name, their evidence tables, plain
sentences with numbers and intervals, and the intermediates the report draws (per-step Gini series,
EP scans). The report, ``dodoco findings`` and the Python API all call it.

The verdicts are pure functions on arrays and rows, each returning a ``Verdict``:

- ``ep_invariance``: does the per-expert straggler move with the EP degree? ("intrinsic" /
  "placement-sensitive"), and how much of the receiver skew each placement removes
- ``mock_vs_real``: Gini(mock)/Gini(real) and the batch-size trend ("fabricated by mock")
- ``bands``: data-resilient / intermediate / persistently concentrated, how sure, plus a
  data-derived grouping

Formulas, defaults and the few-steps rule: docs/findings.md.
"""

from dodoco.findings.bands import CONCENTRATED, INTERMEDIATE, RESILIENT, bands, gap_groups
from dodoco.findings.ep_invariance import EPCurve, RunScan, ep_invariance, relative_change
from dodoco.findings.judge import FINDINGS, Findings, judge
from dodoco.findings.mock_real import GiniSeries, batch_trend, mock_vs_real, step_gini
from dodoco.findings.options import FindingsConfig, FindingsOptions
from dodoco.findings.verdict import FEW_STEPS, Verdict

__all__ = [
    "CONCENTRATED",
    "FEW_STEPS",
    "FINDINGS",
    "INTERMEDIATE",
    "RESILIENT",
    "EPCurve",
    "Findings",
    "FindingsConfig",
    "FindingsOptions",
    "GiniSeries",
    "RunScan",
    "Verdict",
    "bands",
    "batch_trend",
    "ep_invariance",
    "gap_groups",
    "judge",
    "mock_vs_real",
    "relative_change",
    "step_gini",
]
