"""DODOCO: an observatory for Mixture-of-Experts routing and the AlltoAll dispatch it causes.

Shape legend used in every docstring: S sequences, T tokens, L MoE layers, E routed experts,
K experts per token, N EP ranks, B sequences per rank per step, H hidden size.

The public API is importable from here; names are resolved lazily, so ``import dodoco`` loads
neither torch nor transformers until a model-facing function is used.
"""

from __future__ import annotations

from dodoco.provenance import VERSION as __version__
from dodoco.registry import lazy_attributes

_API = {
    "capture": "dodoco.observe.capture:capture",
    "observe": "dodoco.observe.runner:observe",
    "load_model": "dodoco.models.load:load_model",
    "open_run": "dodoco.store.run:open_run",
    "find_runs": "dodoco.store.run:find_runs",
    "validate_run": "dodoco.store.validate:validate_run",
    "metrics_table": "dodoco.analysis:metrics_table",
    "analyze": "dodoco.analysis:analyze",
    "AnalyzeConfig": "dodoco.analysis:AnalyzeConfig",
    "ep_scan": "dodoco.ep.scan:ep_scan",
    "run_source": "dodoco.ep.steps:run_source",
    "judge": "dodoco.findings.judge:judge",
    "FindingsOptions": "dodoco.findings.options:FindingsOptions",
    "build_report": "dodoco.report.build:build_report",
    "SimulateConfig": "dodoco.simulate.api:SimulateConfig",
    "import_dump": "dodoco.ingest:import_dump",
    "ImportConfig": "dodoco.ingest.config:ImportConfig",
    "run_metrics": "dodoco.analysis:run_metrics",
    "summary_rows": "dodoco.analysis:summary_rows",
    "DodocoError": "dodoco.errors:DodocoError",
}

__all__ = sorted(_API) + ["__version__"]


__getattr__ = lazy_attributes(__name__, _API)
