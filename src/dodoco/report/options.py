"""What the report computes and where it goes: ``ReportOptions`` (the findings' options plus the
report's own) and ``ReportConfig`` (the ``report`` command: options, runs, output, attachments).

Every value is checked when the config is made, before any work: ``FindingsOptions`` checks the
analysis values, ``ReportConfig`` that every ``--attach`` file exists. docs/report.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dodoco.errors import DodocoError
from dodoco.findings.options import FindingsOptions

__all__ = ["ReportConfig", "ReportOptions"]


@dataclass(frozen=True, kw_only=True)
class ReportOptions(FindingsOptions):
    """The findings' options, and: heatmap (runs to draw load heatmaps for, as paths or
    model/condition; () = every run of the first max_heatmaps models) and the report's title."""

    heatmap: tuple[str, ...] = ()
    max_heatmaps: int = 8
    title: str = "DODOCO routing report"

    def __post_init__(self):
        super().__post_init__()
        if self.max_heatmaps < 0:
            raise DodocoError(f"max_heatmaps {self.max_heatmaps} must be >= 0")


@dataclass(frozen=True, kw_only=True)
class ReportConfig(ReportOptions):
    """``dodoco report RUNS -o DIR [--attach JSON...] [--json PATH]``."""

    runs: tuple[str, ...]
    out: str
    attach: tuple[str, ...] = ()
    json: str | None = None
    quiet: bool = False

    def __post_init__(self):
        super().__post_init__()
        for a in self.attach:
            if not Path(a).is_file():
                raise DodocoError(f"--attach {a} does not exist: give a replay or simulate JSON file")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise DodocoError(f"report output {self.out} is a file: give a folder with -o")

    def report_options(self) -> ReportOptions:
        return ReportOptions(**{k: getattr(self, k) for k in ReportOptions.keys()})
