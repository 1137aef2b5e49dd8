"""``ReportContext``: what every section reads. It wraps the ``Findings`` of the report's runs
(verdicts, per-step Gini series, EP scans, step sources: computed once by ``judge``) and adds the
report's options, output folder, attachments, one figure ``Style`` and a cache for the rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dodoco.report.section import SkipSection
from dodoco.report.style import Style

__all__ = ["ReportContext"]

_KIND_ORDER = {"mock": 0, "real": 1}


class ReportContext:
    """Shared inputs of the sections (see docs/report.md, "Adding a section")."""

    def __init__(self, findings, options, out, attachments=()):
        self.findings = findings
        self.options = options
        self.out = Path(out)
        self.attachments = list(attachments)  # report.attachments.Attachment, loaded and checked
        self.cache: dict = {}
        conditions = [r.condition for r in sorted(self.runs, key=lambda r: (_KIND_ORDER[self.kind(r)], r.condition))]
        self.style = Style(conditions, options.placement)

    @property
    def runs(self) -> list:
        return self.findings.runs

    def cached(self, key, compute: Callable):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def verdict(self, name: str):
        """The verdict ``name``, or SkipSection saying why it was not judged."""
        if name in self.findings.verdicts:
            return self.findings.verdicts[name]
        raise SkipSection(self.findings.skipped.get(name, f"{name} was not judged"))

    def kind(self, run) -> str:
        """ "mock" or "real" (the manifest's condition kind)."""
        return self.findings.series[self.findings.key(run)].kind

    def sorted_runs(self) -> list:
        """Runs ordered model, then mock before real, then condition: the order of every figure."""
        models = list(dict.fromkeys(r.model for r in self.runs))
        return sorted(
            self.runs, key=lambda r: (models.index(r.model), r.seq_len, _KIND_ORDER[self.kind(r)], r.condition)
        )

    def label(self, run) -> str:
        """A panel title for the run's model: the model, with its sequence length when the runs hold several."""
        several = len({r.seq_len for r in self.runs}) > 1
        return f"{run.model}, seq_len {run.seq_len}" if several else run.model

    def source(self, run):
        return self.findings.source(run)

    def trend(self, run) -> dict:
        """The run's per-step Gini summary at every batch size (``findings.mock_real.batch_trend``)."""
        return self.findings.trends[self.findings.key(run)]

    def scan(self, run):
        """The run's EP scan (``findings.RunScan``), or None when it could not be scanned."""
        return self.findings.scans.get(self.findings.key(run))

    def ep_batch(self, run) -> int:
        s = self.scan(run)
        return s.batch if s is not None else (self.options.ep_batch or 1)

    def aggregate(self, run) -> np.ndarray:
        """int64 [L, E]: assignments per layer and expert over all the run's units (computed once)."""
        return self.cached(("aggregate", self.findings.key(run)), run.aggregate)
